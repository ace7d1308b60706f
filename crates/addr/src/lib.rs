//! The shapes of recipient addresses Weft accepts, in one place: the
//! host's outbox refuses anything else, and a plugin that fans a message
//! out checks with the same rules before it queues anything.

/// An address `local@domain`: no display name, no spaces, a dotted domain
/// of letters, digits and hyphens (what every provider accepts).
pub fn check_email(address: &str) -> Result<(), String> {
    let bad = || Err(format!("{address:?} is not an email address"));
    if address.len() > 254 {
        return bad();
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad();
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok { Ok(()) } else { bad() }
}

/// A phone number in E.164: `+`, a non-zero digit, at most 15 digits.
pub fn check_e164(number: &str) -> Result<(), String> {
    let digits = number.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{number:?} is not an E.164 phone number (+ and 2-15 digits)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        for ok in [
            "ada@example.org",
            "a.b+tag@mail.example.co.uk",
            "x_y@a-b.io",
        ] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@localhost",
            "Ada <ada@example.org>",
            "ada@exa mple.org",
            "ada..b@example.org",
            "ada@-example.org",
            "ada@example.org\r\nBcc: x@y.z",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phone_numbers() {
        for ok in ["+14155550100", "+447700900123", "+12"] {
            assert!(check_e164(ok).is_ok(), "{ok}");
        }
        for bad in [
            "14155550100",
            "+",
            "+0123456",
            "+1415555010012345",
            "+1 415 555",
            "+1415abc",
        ] {
            assert!(check_e164(bad).is_err(), "{bad:?}");
        }
    }
}
