//! Percent-decoding of paths and `application/x-www-form-urlencoded` query
//! strings. Pure functions, so they test natively.

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`).
///
/// A `%` not followed by two hex digits is kept as it is: a query string is
/// caller input, and answering a stray `%` with an error helps nobody.
pub(crate) fn percent_decode(input: &str, plus_as_space: bool) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex_value(bytes.get(i + 1)), hex_value(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

fn hex_value(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a raw query string into decoded `(name, value)` pairs, in order.
///
/// Invalid UTF-8 after decoding is replaced (U+FFFD) rather than refused,
/// as browsers and most servers do.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name), decode_component(value))
        })
        .collect()
}

fn decode_component(raw: &str) -> String {
    String::from_utf8_lossy(&percent_decode(raw, true)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(percent_decode("a%20b+c", true), b"a b c");
        assert_eq!(percent_decode("a%20b+c", false), b"a b+c");
        assert_eq!(percent_decode("%2e%2E/x", false), b"../x");
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(percent_decode("100%", true), b"100%");
        assert_eq!(percent_decode("%zz%4", true), b"%zz%4");
    }

    #[test]
    fn parses_pairs_in_order() {
        assert_eq!(
            parse_query("limit=10&cursor=a%2Bb&flag&=x&&q=hello+world"),
            vec![
                ("limit".into(), "10".into()),
                ("cursor".into(), "a+b".into()),
                ("flag".into(), String::new()),
                (String::new(), "x".into()),
                ("q".into(), "hello world".into()),
            ]
        );
    }

    #[test]
    fn empty_query_has_no_pairs() {
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(parse_query("x=%ff"), vec![("x".into(), "\u{fffd}".into())]);
    }
}
