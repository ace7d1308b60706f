//! Session tokens: JWTs signed with HS256, valid 24 hours.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Error, Result, Role};

/// How long a session token is valid.
pub const SESSION_TTL_SECS: i64 = 24 * 60 * 60;

/// The claims a session token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionToken {
    /// User id.
    pub sub: String,
    /// User's display name.
    pub name: String,
    /// Tenant id (`None` for a superadmin).
    pub tid: Option<String>,
    /// Tenant slug.
    pub tslug: Option<String>,
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// Signs and verifies session tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    /// A signer over `secret` (at least 32 bytes of entropy is advised).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    /// A compact JWT for `claims`.
    pub fn sign(&self, claims: &SessionToken) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!("{signing_input}.{}", B64.encode(sig))
    }

    /// The claims of `token` if its signature is ours, its header is HS256
    /// and it has not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<SessionToken> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::InvalidCredentials);
        };
        let sig = B64.decode(sig).map_err(|_| Error::InvalidCredentials)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| Error::InvalidCredentials)?;
        // Only after the signature holds is the content looked at; the header
        // must still say HS256 so a token can never pick its own algorithm.
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(header).map_err(|_| Error::InvalidCredentials)?)
                .map_err(|_| Error::InvalidCredentials)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(Error::InvalidCredentials);
        }
        let claims: SessionToken =
            serde_json::from_slice(&B64.decode(payload).map_err(|_| Error::InvalidCredentials)?)
                .map_err(|_| Error::InvalidCredentials)?;
        if claims.exp <= now {
            return Err(Error::InvalidCredentials);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> SessionToken {
        SessionToken {
            sub: "u1".into(),
            name: "Ann".into(),
            tid: Some("t1".into()),
            tslug: Some("acme".into()),
            role: Role::Admin,
            iat: 0,
            exp,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let signer = TokenSigner::new(b"secret-secret-secret-secret-secr");
        let token = signer.sign(&claims(100));
        assert_eq!(signer.verify(&token, 99).expect("valid"), claims(100));
        assert!(signer.verify(&token, 100).is_err(), "expired at exp");
    }

    #[test]
    fn forged_or_mangled_tokens_fail() {
        let signer = TokenSigner::new(b"one");
        let other = TokenSigner::new(b"two");
        let token = signer.sign(&claims(100));
        assert!(other.verify(&token, 0).is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_payload = B64.encode(
            serde_json::to_vec(&SessionToken {
                role: Role::Superadmin,
                ..claims(100)
            })
            .expect("json"),
        );
        parts[1] = &forged_payload;
        assert!(signer.verify(&parts.join("."), 0).is_err());
        assert!(signer.verify("a.b", 0).is_err());
        assert!(signer.verify("", 0).is_err());
    }
}
