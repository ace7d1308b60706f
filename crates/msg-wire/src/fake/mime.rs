//! Just enough MIME reading for tests to look inside what the fake SMTP
//! server received: header unfolding, RFC 2047 encoded words, multipart
//! splitting, base64 and quoted-printable bodies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One leaf (non-multipart) part of a received message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePart {
    /// The media type in lower case without parameters, e.g. `text/plain`
    /// (`text/plain` when the part has no `Content-Type`).
    pub content_type: String,
    /// The part's own headers, unfolded, encoded words decoded.
    pub headers: Vec<(String, String)>,
    /// The body after undoing its `Content-Transfer-Encoding`, as text,
    /// without trailing line breaks (MIME and SMTP framing add them).
    pub body: String,
}

/// Splits a message (or part) into its unfolded raw headers and its body.
pub(super) fn split(text: &str) -> (Vec<(String, String)>, &str) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    loop {
        let (line, after) = match rest.find('\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return (headers, after);
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        if after.is_empty() {
            return (headers, "");
        }
        rest = after;
    }
}

/// The first header named `name`, case-insensitive.
pub(super) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every leaf part below a part with `headers` and `body`, depth first.
pub(super) fn leaf_parts(headers: &[(String, String)], body: &str) -> Vec<MimePart> {
    let content_type = find(headers, "Content-Type").unwrap_or("text/plain");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    if media_type.starts_with("multipart/")
        && let Some(boundary) = parameter(content_type, "boundary")
    {
        return split_multipart(body, &boundary)
            .into_iter()
            .flat_map(|part| {
                let (headers, body) = split(part);
                leaf_parts(&headers, body)
            })
            .collect();
    }
    let encoding = find(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            STANDARD
                .decode(compact)
                .unwrap_or_else(|_| body.as_bytes().to_vec())
        }
        "quoted-printable" => quoted_printable(body, false),
        _ => body.as_bytes().to_vec(),
    };
    vec![MimePart {
        content_type: media_type,
        headers: headers
            .iter()
            .map(|(n, v)| (n.clone(), decode_words(v)))
            .collect(),
        body: String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    }]
}

/// A `name=value` or `name="value"` parameter of a header value.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, val) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_owned())
    })
}

/// The bodies between `--boundary` lines, without the line break that
/// belongs to the next delimiter.
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == delimiter || bare == closing {
            if let Some(from) = start {
                let part = &body[from..offset];
                let part = part.strip_suffix('\n').unwrap_or(part);
                parts.push(part.strip_suffix('\r').unwrap_or(part));
            }
            if bare == closing {
                break;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    parts
}

/// Quoted-printable decoding (RFC 2045); `underscores` for RFC 2047's
/// `Q` encoding, where `_` is a space.
fn quoted_printable(text: &str, underscores: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if underscores => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?utf-8?Q?...?=`);
/// whitespace between two encoded words is dropped, as the RFC says.
pub(super) fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let Some(word) = encoded_word(&rest[start..]) else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_word = false;
            continue;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        out.push_str(&word.text);
        rest = &rest[start + word.len..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

struct Word {
    text: String,
    len: usize,
}

/// The encoded word at the start of `text`, if it is one.
fn encoded_word(text: &str) -> Option<Word> {
    let inner = text.strip_prefix("=?")?;
    let (_charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = &inner[..end];
    if payload.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => STANDARD.decode(payload).ok()?,
        "Q" | "q" => quoted_printable(payload, true),
        _ => return None,
    };
    let len = text.len() - inner.len() + end + 2;
    Some(Word {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(decode_words("=?utf-8?b?R3LDvMOfZQ==?="), "Grüße");
        assert_eq!(
            decode_words("=?utf-8?q?Gr=C3=BC=C3=9Fe_dich?= x"),
            "Grüße dich x"
        );
        assert_eq!(decode_words("=?utf-8?b?R3I=?= =?utf-8?b?w7w=?="), "Grü");
        assert_eq!(decode_words("plain =? text"), "plain =? text");
    }

    #[test]
    fn walks_multipart_and_decodes_bodies() {
        let message = "Subject: x\r\nContent-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\n\
            preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe =\r\nall\r\n\
            --b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            PHA+SGk8L3A+\r\n--b1--\r\n";
        let (headers, body) = split(message);
        assert_eq!(
            find(&headers, "content-type"),
            Some("multipart/alternative; boundary=\"b1\"")
        );
        let parts = leaf_parts(&headers, body);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, "text/plain");
        assert_eq!(parts[0].body, "Grüße all");
        assert_eq!(parts[1].content_type, "text/html");
        assert_eq!(parts[1].body, "<p>Hi</p>");
    }
}
