//! Fixed RSA keys for the fakes and tests. TEST-ONLY: they are published
//! in this source file, so anything signed with them proves nothing.
//! Generated once for this crate (`openssl genpkey -algorithm RSA -pkeyopt
//! rsa_keygen_bits:2048`); ring cannot generate RSA keys.

/// A 2048-bit RSA private key, PEM PKCS#8: the key of the service account
/// [`FakeFcm`](super::FakeFcm) trusts. **Test-only.**
pub const TEST_RSA_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC08hXyRAqN9xhW\n\
obnGdyrbeY1YaCauThk5raWn6/1ou4UcUDm2swF8gEaC0NEZL+v9THIxHoNmmYFG\n\
WFH6zEYG54AsT5BichgAPtuxORNTd9ic3lj8/Wa4vXBLCem7z2JhLxOGVRd04D32\n\
9fB+3Be+oEVTDkXojvTADI9xE62rI2X7ffq4Xji1laSsuVfx64cNvNVsDNF5EwIN\n\
FYedxI4lJ0E+C9l5QvcjffYrNbAzBBZYLN6uPOTB+VIsXDD2Y47p3NcL74GdRRXa\n\
DTiQ84GwC46HN+IHq2uEyTp1fl/UBDzSVdzgcGNDVj8zMwl6jjJjwp4RaBqmOrkB\n\
+LQFFprjAgMBAAECggEASaYbfq9pKF2Bv4k2J2zLuedgu7IwxFOvesWOHqo0S9O/\n\
m0WgKBf2K+m+SXKbGUhjIodiF1IXI8SpVKuQOqe4fQjvJ5n+58MOt9Ld8uWLUzb9\n\
qOPrjpXJoLoiobhYNYR0w5+4r72kvYKkVgfGqqwE0idD8Eln9P9y6VRzchATaQth\n\
N/Dgfub8d6spObgVTxWVYE3e6rOIOQpAZhpTv3jD3ApIs14+q5J+dIXK01vGLpgu\n\
UUUCKpqe9lRXLWN61/N7zc3jgyj43uJ0boPolgfW1FVTgBYyExB+crmUXsX/6Q8Z\n\
ByDvd08Y17hXD313JT9Qi1P/BRvslcww7tZ1OIPDAQKBgQDZ67YPnatwPH4fOq+i\n\
Vvj75QCsMWCyNQZPBfY/cyZ8dOWWI8AlHHMcnUleL2T1IyhIq0shTSu5R8qXBRgs\n\
mvbFiL/bEPHK/m4mrVxfA6ZWhjensQIXsM6EW60yiF3S+U/nJNgfHl0M+MZ+dCy7\n\
zKtAiFEX1FJ2NYbjj5FK5bpAgQKBgQDUkFxSfDzXjZ+ZIUufD2/WbfI6eqa4QXal\n\
YKLUVSV9O/9AAOcPd/hJF1Qz7vgEAVW5fQ6LQfwDOlmYk/bw95CktNmZyJBTkjnb\n\
bJqEQSA/E1S0ZBXjbtchWFh9vFUbPpSRWYSMpd1S3ev2h4ebeaylnMn+633KvCWK\n\
qD1HfDspYwKBgCHS0ANEeaOGAB1gwnnz/dk7Bguz7ko6qKwDROE8QjD3A9t12RDp\n\
hYRfdU/FE2po9ouw6oxUqgCr/+nIxKPHuZ2XSA/8ZUsYiog+SCQHMP4k/uZsNuLu\n\
cl9gy1UYjVd9ksVRlqnd0Jt+0XA3H+pWLg5qGgwUzGfEjxcq5WY2md4BAoGAHlAf\n\
+lthSdQWiH3pDNvktQ2k15YaJHihdOAdGG60E/H0aqo2SUxwievbxDQ2Bkwyb2tY\n\
IZ/dUpCFqm6fbqm/ZN2tknK5slFOEu6f8nBfKt+U2szTGkX6Q/UXWYb8FBCOm1PK\n\
xUv6DhE7z0Jwokltx4hefg4TOFAwgl+PrZwXy8UCgYEAixNGsSg8zTCluJh96CFP\n\
k4qpaAH2vNeCjRPtDTieZH6MQUEBVBHGqzse4CWx0bJfgvM2Zk5aYmU8VyKI/fhu\n\
iD5EqLBbVeMP5kcXW2EQaCovRt78CngTifUbDEGVMWeIT8nd7FDDOLL24faa7Jca\n\
fI3iH2RIp8XE6mEdTeZw8X8=\n\
-----END PRIVATE KEY-----\n\
";

/// A second 2048-bit RSA private key, PEM PKCS#8, that no fake trusts:
/// sign with it to test a wrong key. **Test-only.**
pub const OTHER_TEST_RSA_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCld9U6IkC0BBnX\n\
vAwvk9LDS2mk0KY1lUhUSahBOJHzAp8gUcYDiad8MgRt3P1FidPLwa8tYBI85OZ5\n\
qJ0Xwq7cZ72CXtKDhtk3RK26sDqlVtPv4Uu0lGKKMOrA4FMUUc2xlnHIh1VGf5/6\n\
Ii3rT9LTfu9spSjah28B9k+ey3nMO/SSQCEqYUImMmlprwNKa/v9JIRCkFdzCpGo\n\
yz4UlM5ugNsXkF9FJLT/l29/chGW5wIFsMf3c91R9+Dx7xx+B1o8K9YAAtfaObrT\n\
nGVC7/qqsVw13auxfrS6kALcCS9UmssAinVUyA8Z+0vFRj/otJn566xr3z3Xruot\n\
G03WHDidAgMBAAECggEAFuvHn2WZSEEn10jsTeGQmORRvmFMyjAOCeb+JggREkmd\n\
rgYbLj2bnspK73EPqy9RexsvCf5nPa+I9vdSyN97W3q0t2ItOnJWlUpainmDq4hL\n\
Ps0bBekRfApp/80olQWpPwgTu5nLnULBRWQGBQpUrl7EtGxt1qpbco532bZeqS9i\n\
ZuLB1xogopXBSdSp76Y+0hRa7FDU/QvClbCvTWOES7kcKaOX8eFKH9KUBwVqcP+E\n\
Rx5fEGunOmZj4s7AvFJI49Pyab0Ra+Zvcoq1/7hbCB1QpL4TeH08iagzGXR+mlgn\n\
o8ZSrSW6QS1PPm0Ct9f5ERQ9MoIKfiDEHEQDqq0pPQKBgQDgQeZf8rbatHd0R62q\n\
OSlEtrnyTVKlBHRWbw1vOm6P8uZ+kHXl27y2esHJxy7in8yRlN+3J8SPDWyWKXrj\n\
jOg8f7uDua2+jbA7N3ZiblBFrCXzvo/IilQ9vv/cT7zJz8rclZvd6BW/xWsXo1VX\n\
Iy34BcziaVGPcpPhsIpImv1Z3wKBgQC846rJolWBGDwEweK2KY27F3Dxa7/iHEzB\n\
UWSO8RSNqxQjKywQObl4be+ao7PHSNzffUC/VNbNvDQJTKIHzsZK75iq2OgdUqtz\n\
HlHuC44PubhFJly5L7MbZTHQHlCf8Tm3NL5z1WW/ZVg3fH/r0jljgC9+cZqT2tt8\n\
EsxCUZc1AwKBgA6hvho8h9m1NKYNlzMoD51AHtnEWcQSilSpYkMDmPsjag6P9mFM\n\
+P8e+03jBRgcPQiyofYdTiHXSmJxymbWZsCrxNxPXRq1u+3hLIQ3ll01YjSJFnCL\n\
NfvhXmhNe4/fUukZidXssp6Ujuw35/WLghBQsJGFNaEaZLOxBRS/qBAZAoGATm7G\n\
wxUaJhG3Ek6j4fodNPvF1SllsvEHWhp/A+/NFgpcwUGy+UXO4tfbbz3cb7qspExx\n\
L0F+NE2a2eWtPkq5AfK9VOvebhaexJ1pbcv0gEkg3+3PAMJyv8RkS8PavJ9A1Pcc\n\
wiJxLmlZmSikQXq4g719eyaXBiARlVKE6GDSxZsCgYBweCfBzu8AEOddCHJd3sm+\n\
zSgTWgwtnPfvr03+FNv3AqJQRJFg4UsXdLYE27fH2A9ZzN7XOd1CYgesaxVe4O49\n\
0O/NCUr6cLW7+5VENKLoZ7zpd3pbMbjKydK+2OUdbcib3TI2CJcrOKX0s3Z7/SBH\n\
+Jx21NmbYWpkrePp3XwOJQ==\n\
-----END PRIVATE KEY-----\n\
";
