//! Code blocks pulled out of a web page, a Markdown document or pasted
//! text, for the library's research feature: the caller fetches or receives
//! a body, [`sniff`]s its format, [`extract`]s the blocks and dedupes them
//! against the library.
//!
//! The input is untrusted and often malformed, so the scanners are
//! hand-written, forgiving (unclosed fences and tags run to the end) and
//! never panic: they only slice at the byte offsets of ASCII delimiters,
//! which are always character boundaries, so multi-byte text anywhere is
//! safe.
//!
//! One child module per input kind (`markdown`, `html`) and one for
//! `language` naming and guessing, each with its tests, keeps every file
//! well under the house limit; the block rules shared by all (size,
//! dedent, context clipping) live here.

use serde::Serialize;

mod html;
mod language;
mod markdown;

pub use language::{guess_language, normalize_language};

/// Longer blocks are generated files or bundles, not snippets.
pub const MAX_BLOCK_BYTES: usize = 100_000;
/// Fewer non-empty lines than this is a one-liner (`cargo add serde`):
/// noise in a library.
pub const MIN_BLOCK_LINES: usize = 2;
/// Fewer characters than this is noise too, whatever its lines.
pub const MIN_BLOCK_CHARS: usize = 20;
/// How much surrounding prose a block keeps as its title or context.
pub const MAX_CONTEXT_CHARS: usize = 300;

/// The format of a body, which decides how blocks are found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Text,
}

/// Guesses the format from a `Content-Type` value and the body.
///
/// `text/html` and `text/markdown` are trusted. `text/plain` (how raw
/// GitHub files are served, READMEs included) and a missing header are
/// decided by the body: a page starting with `<` that has `<html`/a doctype
/// is HTML; then fences mean Markdown (a README opening with
/// `<p align="center">` is still Markdown); then `<pre`/`<body` mean HTML,
/// but only when no header was given, since a `text/plain` HTML file is
/// source to keep whole. Any other type (`application/javascript`,
/// `text/x-rust`) is a code file: Text.
pub fn sniff(content_type: Option<&str>, body: &str) -> Format {
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some("text/html" | "application/xhtml+xml") => return Format::Html,
        Some("text/markdown" | "text/x-markdown") => return Format::Markdown,
        Some("text/plain") | None => {}
        Some(_) => return Format::Text,
    }
    let tagged = body
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<');
    let has = |needle: &str| html::find_ci(body.as_bytes(), 0, needle.as_bytes()).is_some();
    if tagged && (has("<html") || has("<!doctype html")) {
        Format::Html
    } else if body.lines().any(|l| markdown::fence_open(l).is_some()) {
        Format::Markdown
    } else if mime.is_none() && tagged && (has("<pre") || has("<body")) {
        Format::Html
    } else {
        Format::Text
    }
}

/// One code block found in a body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    /// Dedented, trailing whitespace trimmed per line, inner formatting kept.
    pub code: String,
    /// One of the names [`normalize_language`] returns: from the markup when
    /// it says, else guessed. `None` when the markup names another language
    /// (`python`) or the guess is unsure.
    pub language: Option<String>,
    /// The nearest preceding heading of level 1-3.
    pub title: Option<String>,
    /// The nearest preceding paragraph in the same section, whitespace
    /// collapsed, at most [`MAX_CONTEXT_CHARS`].
    pub context: Option<String>,
    /// The 1-based line of the body where the block's first line is.
    pub line: usize,
}

/// Every code block worth keeping, in document order.
pub fn extract(body: &str, format: Format) -> Vec<Block> {
    match format {
        Format::Markdown => markdown::extract(body),
        Format::Html => html::extract(body),
        Format::Text => {
            // Checked before guessing so a huge body costs nothing.
            if body.len() > MAX_BLOCK_BYTES
                || (guess_language(body).is_none() && !looks_punctuated(body))
            {
                return Vec::new();
            }
            block(body, Declared::Unsaid, None, None, 1)
                .into_iter()
                .collect()
        }
    }
}

/// What a block's markup says of its language. `Other` (a tag naming a
/// language outside the set) is kept apart from `Unsaid` so a Python block
/// is not guessed into, say, TOML.
#[derive(Clone, Copy)]
enum Declared {
    Unsaid,
    Known(&'static str),
    Other,
}

/// Tags that name no language at all, so the code itself must tell.
const GENERIC_TAGS: &[&str] = &[
    "",
    "text",
    "txt",
    "plain",
    "plaintext",
    "code",
    "none",
    "nohighlight",
    "no-highlight",
    "auto",
];

fn declared(tag: &str) -> Declared {
    if GENERIC_TAGS.contains(&language::bare(tag).as_str()) {
        Declared::Unsaid
    } else {
        normalize_language(tag).map_or(Declared::Other, Declared::Known)
    }
}

/// Several lines most of which end the way statements and blocks do.
fn looks_punctuated(code: &str) -> bool {
    let lines: Vec<&str> = code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let codey = lines
        .iter()
        .filter(|l| l.ends_with([';', '{', '}', '(', ')', '[', ']']) || l.starts_with("//"))
        .count();
    lines.len() >= 3 && codey * 2 >= lines.len()
}

/// Dedents and trims `raw`, applies the size rules and settles the language.
fn block(
    raw: &str,
    declared: Declared,
    title: Option<String>,
    context: Option<String>,
    first_line: usize,
) -> Option<Block> {
    if raw.len() > MAX_BLOCK_BYTES {
        return None;
    }
    let lines: Vec<&str> = raw.split('\n').map(str::trim_end).collect();
    let lead = lines.iter().take_while(|l| l.is_empty()).count();
    let end = lines.len() - lines.iter().rev().take_while(|l| l.is_empty()).count();
    let body = lines.get(lead..end)?;
    let indent = body
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| &l[..l.len() - l.trim_start_matches([' ', '\t']).len()])
        .reduce(|a, b| {
            let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            &a[..n]
        })
        .unwrap_or("");
    let code = body
        .iter()
        .map(|l| l.get(indent.len()..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let non_empty = body.iter().filter(|l| !l.is_empty()).count();
    // A block of digits only is a line-number gutter, not code.
    if non_empty < MIN_BLOCK_LINES
        || code.chars().count() < MIN_BLOCK_CHARS
        || !code.chars().any(char::is_alphabetic)
    {
        return None;
    }
    let language = match declared {
        Declared::Known(l) => Some(l),
        Declared::Other => None,
        Declared::Unsaid => guess_language(&code),
    };
    Some(Block {
        code,
        language: language.map(str::to_owned),
        title,
        context,
        line: first_line + lead,
    })
}

/// Collapses whitespace and cuts at [`MAX_CONTEXT_CHARS`] on a word.
/// Reads no further than it keeps, so a huge paragraph costs little.
fn clip(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        if count > 0 {
            out.push(' ');
            count += 1;
        }
        let room = MAX_CONTEXT_CHARS + 1 - count.min(MAX_CONTEXT_CHARS + 1);
        out.extend(word.chars().take(room));
        count += word.chars().take(room).count();
        if count > MAX_CONTEXT_CHARS {
            break;
        }
    }
    if count <= MAX_CONTEXT_CHARS {
        return out;
    }
    let cut = out
        .char_indices()
        .nth(MAX_CONTEXT_CHARS)
        .map_or(out.len(), |(i, _)| i);
    let head = &out[..cut];
    let head = head
        .rfind(' ')
        .filter(|&i| i > cut / 2)
        .map_or(head, |i| &head[..i]);
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_the_header_then_the_body() {
        let page = "<!doctype html><html><body><pre>x</pre></body></html>";
        let readme =
            "<p align=\"center\"><img src=\"logo.png\"></p>\n\n```rust\nfn main() {}\n```\n";
        let cases = [
            (
                Some("text/html; charset=utf-8"),
                "plain words",
                Format::Html,
            ),
            (Some("text/markdown"), "no fences", Format::Markdown),
            (
                Some("application/javascript"),
                "```js\nx\n```",
                Format::Text,
            ),
            (Some("text/plain"), readme, Format::Markdown),
            (Some("text/plain"), "<pre>raw html file</pre>", Format::Text),
            (None, page, Format::Html),
            (None, "\u{feff}  <PRE class=x>fn a() {}</PRE>", Format::Html),
            (None, readme, Format::Markdown),
            (None, "~~~\ncode\n~~~", Format::Markdown),
            (None, "fn main() {}\n/// ```rust\n", Format::Text),
        ];
        for (content_type, body, want) in cases {
            assert_eq!(sniff(content_type, body), want, "{content_type:?} {body}");
        }
    }

    #[test]
    fn plain_text_is_one_block_only_when_it_looks_like_code() {
        let rust =
            "\n\nfn main() {\n    let greeting = \"hello\";\n    println!(\"{greeting}\");\n}\n";
        let blocks = extract(rust, Format::Text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            (blocks[0].line, blocks[0].language.as_deref()),
            (3, Some("rust"))
        );
        let c = "#include <stdio.h>\nint main(void) {\n  printf(\"hi\\n\");\n  return 0;\n}\n";
        assert_eq!(extract(c, Format::Text)[0].language, None);
        let prose = "Dear team,\nthe release is out today.\nThanks for all the work!\n";
        assert!(extract(prose, Format::Text).is_empty());
    }

    #[test]
    fn tiny_huge_and_numeric_blocks_are_dropped() {
        let keep = |raw: &str| block(raw, Declared::Unsaid, None, None, 1).is_some();
        assert!(!keep("cargo add serde"));
        assert!(!keep("let a = 1;\nlet b;"));
        assert!(!keep("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12"));
        assert!(keep("let a = 1;\nlet b = 2;"));
        let huge = "let x = 1;\n".repeat(MAX_BLOCK_BYTES / 11 + 2);
        assert!(!keep(&huge));
        let md = format!("```rust\n{huge}```\n\n```sh\ncargo add serde\n```\n");
        assert!(extract(&md, Format::Markdown).is_empty());
        assert!(extract(&huge, Format::Text).is_empty());
    }

    #[test]
    fn blocks_are_dedented_and_trimmed_but_otherwise_kept() {
        let raw = "\n \n    fn a() {\n    \t\n        b(\"  x  \");   \r\n    }\n\n";
        let b = block(raw, Declared::Known("rust"), None, None, 10);
        let b = b.map(|b| (b.code, b.line));
        assert_eq!(
            b,
            Some(("fn a() {\n\n    b(\"  x  \");\n}".to_string(), 12))
        );
        let tabs = block(
            "\tif ready {\n\t\tgo_now();\n\t}",
            Declared::Other,
            None,
            None,
            1,
        );
        let tabs = tabs.map(|b| (b.code, b.language));
        assert_eq!(tabs, Some(("if ready {\n\tgo_now();\n}".into(), None)));
        let mixed = block(
            "  \tlet a = 1;\n  let b = 2;",
            Declared::Unsaid,
            None,
            None,
            1,
        );
        assert_eq!(
            mixed.map(|b| b.code).as_deref(),
            Some("\tlet a = 1;\nlet b = 2;")
        );
    }

    #[test]
    fn context_is_clipped_on_a_character_boundary() {
        assert_eq!(clip("  a \n  b\t c "), "a b c");
        let cjk = clip(&"日本語のテキスト🦀".repeat(60));
        assert_eq!(cjk.chars().count(), MAX_CONTEXT_CHARS + 1);
        assert!(cjk.ends_with('…'));
        let words = clip(&"word ".repeat(100));
        assert!(words.ends_with("word…") && words.chars().count() <= MAX_CONTEXT_CHARS + 1);
    }

    #[test]
    fn no_input_panics_including_multi_byte_text_anywhere() {
        let nasty = concat!(
            "🦀# 見出し🦀\n<p>日本語 &#x1F980; &#xFFFFFFFF; &#99999999999; &</p>\n",
            "```🦀 rust\nfn 関数() { let 変数 = \"🦀\"; }\n```\n~~~\n<PRE CLASS='lang-ts\"><code ",
            "class=🦀>const a = 1;\n<span class=\"ln\">1</span>🦀&lt;&#\n</pre><pre><script>",
            "x<</script><style>🦀</st<!-- 🦀 --><!doctype <a href=\"🦀>\n<h2>標題</h2 <code>a\nb",
            "\n🦀</code></p></h1><</<a =\"x\" =>💥\n$ cargo 🦀\n    ```\n",
        );
        let chars: Vec<usize> = nasty.char_indices().map(|(i, _)| i).collect();
        for &i in &chars {
            for part in [&nasty[..i], &nasty[i..]] {
                for format in [Format::Html, Format::Markdown, Format::Text] {
                    for b in extract(part, format) {
                        assert!(b.code.chars().count() >= MIN_BLOCK_CHARS);
                    }
                }
                let _ = (
                    sniff(None, part),
                    guess_language(part),
                    normalize_language(part),
                );
            }
        }
        let json = serde_json::to_value(extract(nasty, Format::Markdown)).unwrap_or_default();
        // The one-line block is dropped; the `~~~` fence runs to the end.
        assert!(
            json[0]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("<PRE CLASS='lang-ts"))
        );
        assert_eq!(
            (&json[0]["line"], &json[0]["title"]),
            (&7.into(), &serde_json::Value::Null)
        );
    }
}
