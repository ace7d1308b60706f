//! Signed tokens for the links in messages: unsubscribe (RFC 8058
//! one-click) and double opt-in confirmation.
//!
//! A token is `base64url(purpose|scope|subject).base64url(HMAC-SHA256)`
//! under the tenant's secret, which never leaves the plugin's kv. It is
//! the credential of the public routes, so anything altered — or signed
//! with another tenant's secret — is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Confirm,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "u",
            Purpose::Confirm => "c",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub purpose: Purpose,
    /// `all`, or `list:{id}`.
    pub scope: String,
    /// `u:{user}`, `e:{address}` or `p:{number}`.
    pub subject: String,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    BadSignature,
    WrongPurpose,
}

fn mac(secret: &[u8], payload: &[u8]) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes a key of any length"),
    };
    mac.update(payload);
    mac
}

/// The token for `claims`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let payload = format!(
        "{}|{}|{}",
        claims.purpose.tag(),
        claims.scope,
        claims.subject
    );
    let sig = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", B64.encode(payload), B64.encode(sig))
}

/// The claims of `token` if `secret` signed it for `purpose`.
pub fn verify(secret: &[u8], token: &str, purpose: Purpose) -> Result<Claims, Refused> {
    let (payload, sig) = token.split_once('.').ok_or(Refused::Malformed)?;
    let payload = B64.decode(payload).map_err(|_| Refused::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| Refused::Malformed)?;
    // Constant-time comparison.
    mac(secret, &payload)
        .verify_slice(&sig)
        .map_err(|_| Refused::BadSignature)?;
    let payload = String::from_utf8(payload).map_err(|_| Refused::Malformed)?;
    let mut parts = payload.splitn(3, '|');
    let (Some(tag), Some(scope), Some(subject)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refused::Malformed);
    };
    if tag != purpose.tag() {
        return Err(Refused::WrongPurpose);
    }
    Ok(Claims {
        purpose,
        scope: scope.to_owned(),
        subject: subject.to_owned(),
    })
}

/// Hex SHA-256 of `parts`, joined by a separator no part contains: ids
/// and idempotency keys derived from data.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            purpose: Purpose::Unsubscribe,
            scope: "all".into(),
            subject: "e:ada@example.org".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        let t = sign(b"secret-a", &claims());
        assert_eq!(verify(b"secret-a", &t, Purpose::Unsubscribe), Ok(claims()));
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let t = sign(b"secret-a", &claims());
        assert_eq!(
            verify(b"secret-b", &t, Purpose::Unsubscribe),
            Err(Refused::BadSignature)
        );
        // Another subject with the old signature.
        let (_, sig) = t.split_once('.').expect("two parts");
        let forged = format!("{}.{sig}", B64.encode("u|all|e:eve@example.org"));
        assert_eq!(
            verify(b"secret-a", &forged, Purpose::Unsubscribe),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(b"secret-a", "garbage", Purpose::Unsubscribe),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(b"secret-a", &t, Purpose::Confirm),
            Err(Refused::WrongPurpose)
        );
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&["x"]).len(), 64);
    }
}
