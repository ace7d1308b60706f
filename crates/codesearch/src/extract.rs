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
fn clip(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_CONTEXT_CHARS) {
        None => text,
        Some((cut, _)) => {
            let head = &text[..cut];
            let head = head
                .rfind(' ')
                .filter(|&i| i > cut / 2)
                .map_or(head, |i| &head[..i]);
            format!("{head}…")
        }
    }
}
