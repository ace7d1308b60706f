//! The plain-text part of an email made from its HTML when the template
//! has none: mail clients that show text only (and spam filters, which
//! distrust HTML-only mail) get the same words, links spelled out.
//!
//! Deliberately small: templates are the tenant's own HTML, not arbitrary
//! web pages, so tags are dropped, block elements become line breaks, list
//! items get a dash, links keep their target, and the common entities are
//! decoded.

use std::borrow::Cow;

/// `html` as readable plain text.
pub fn from_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    // The href of the link being written, printed after its text.
    let mut link: Option<String> = None;
    // Inside <style>/<script>/<head>: text there is not for people.
    let mut hidden: Option<&'static str> = None;
    while let Some(open) = rest.find('<') {
        if hidden.is_none() {
            push_text(&mut out, &rest[..open]);
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = &after[..close];
        rest = &after[close + 1..];
        let (closing, name) = match tag.strip_prefix('/') {
            Some(t) => (true, tag_name(t)),
            None => (false, tag_name(tag)),
        };
        if let Some(h) = hidden {
            if closing && name == h {
                hidden = None;
            }
            continue;
        }
        match (closing, name.as_ref()) {
            (false, "style") => hidden = Some("style"),
            (false, "script") => hidden = Some("script"),
            (false, "head") => hidden = Some("head"),
            (false, "br") => out.push('\n'),
            (false, "li") => {
                line_break(&mut out);
                out.push_str("- ");
            }
            (false, "a") => link = attribute(tag, "href"),
            (true, "a") => {
                if let Some(href) = link.take() {
                    let shown = out.trim_end().ends_with(href.as_str());
                    if !shown && !href.starts_with('#') {
                        out.push_str(" (");
                        out.push_str(&href);
                        out.push(')');
                    }
                }
            }
            (_, "p" | "div" | "tr" | "table" | "ul" | "ol" | "blockquote" | "section") => {
                paragraph(&mut out)
            }
            (_, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => paragraph(&mut out),
            (false, "hr") => {
                paragraph(&mut out);
                out.push_str("----");
                paragraph(&mut out);
            }
            (false, "td" | "th") => out.push(' '),
            _ => {}
        }
    }
    if hidden.is_none() {
        push_text(&mut out, rest);
    }
    tidy(&out)
}

/// A tag's name in lower case (copied only if it has capitals: this runs
/// for every tag of every message).
fn tag_name(tag: &str) -> Cow<'_, str> {
    let name = tag
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .next()
        .unwrap_or("");
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The value of attribute `name` in a start tag's text, quoted or not.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - rest.len() + 1;
        let value = tag[value_start..].trim_start();
        let parsed = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split_whitespace().next().unwrap_or(""),
        };
        return Some(decode_entities(parsed).into_owned());
    }
    None
}

/// Text between tags: whitespace collapsed as a browser would.
fn push_text(out: &mut String, text: &str) {
    let decoded = decode_entities(text);
    for (i, word) in decoded.split_whitespace().enumerate() {
        let starts_with_space = i > 0 || decoded.starts_with(char::is_whitespace);
        if starts_with_space && !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
        out.push_str(word);
    }
    if decoded.ends_with(char::is_whitespace) && !decoded.trim().is_empty() {
        out.push(' ');
    }
}

fn line_break(out: &mut String) {
    trim_trailing_spaces(out);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn paragraph(out: &mut String) {
    trim_trailing_spaces(out);
    if out.is_empty() {
        return;
    }
    while !out.ends_with("\n\n") {
        out.push('\n');
    }
}

fn trim_trailing_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Lines trimmed, at most one empty line in a row, none at the ends.
fn tidy(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// The named entities templates use, and numeric ones (the text is
/// copied only if it has one).
fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity_end = after.find(';').filter(|&e| e <= 10);
        let decoded = entity_end.and_then(|e| {
            let name = &after[..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_inline_tags() {
        let html =
            "<h1>Hello  Ada</h1><p>Your order is <b>on its way</b>.</p><p>Line one<br>line two</p>";
        assert_eq!(
            from_html(html),
            "Hello Ada\n\nYour order is on its way.\n\nLine one\nline two"
        );
    }

    #[test]
    fn links_keep_their_target_and_lists_their_items() {
        let html = r#"<p>Read <a href="https://x.example/t/1">the topic</a></p><ul><li>one</li><li>two &amp; three</li></ul>"#;
        assert_eq!(
            from_html(html),
            "Read the topic (https://x.example/t/1)\n\n- one\n- two & three"
        );
        // A link whose text is its address is not repeated.
        assert_eq!(
            from_html(r#"<a href='https://a.example'>https://a.example</a>"#),
            "https://a.example"
        );
    }

    #[test]
    fn styles_scripts_and_entities() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body><p>5 &lt; 6 &#233;t&#xE9;</p><script>alert(1)</script></body></html>";
        assert_eq!(from_html(html), "5 < 6 été");
        assert_eq!(decode_entities("a &unknown; b & c"), "a &unknown; b & c");
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(from_html("just text"), "just text");
        assert_eq!(from_html(""), "");
        assert_eq!(from_html("unclosed <b"), "unclosed");
    }
}
