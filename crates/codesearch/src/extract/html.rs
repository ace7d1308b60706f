//! `<pre>` and multi-line `<code>` blocks of a web page, with the heading
//! and paragraph before them.

use super::{Block, Declared, block, clip, declared, normalize_language};

enum Tok<'a> {
    Text(&'a str),
    Open(&'a str, &'a str),
    Close(&'a str),
}

/// Splits HTML into text and tags, dropping comments, doctypes and the
/// contents of `<script>`/`<style>` (code-like, never the page's examples).
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Set once a quote was found never to close: from then on tags end at
    /// the first `>`, so a page of stray quotes costs one scan, not one
    /// per tag.
    stray_quote: bool,
}

impl<'a> Iterator for Lexer<'a> {
    /// A token and the offset just past it.
    type Item = (Tok<'a>, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let (src, b) = (self.src, self.src.as_bytes());
        loop {
            let start = self.pos;
            let rest = b.get(start..).filter(|r| !r.is_empty())?;
            let next_lt = |from: usize| find_byte(b, from, b'<');
            if rest[0] != b'<' {
                self.pos = next_lt(start);
                return Some((Tok::Text(&src[start..self.pos]), self.pos));
            }
            if rest.starts_with(b"<!--") {
                self.pos = find_ci(b, start + 4, b"-->").map_or(b.len(), |i| i + 3);
                continue;
            }
            if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
                self.pos = (find_byte(b, start, b'>') + 1).min(b.len());
                continue;
            }
            let closing = rest.get(1) == Some(&b'/');
            let name_start = start + 1 + usize::from(closing);
            let name_len = b
                .get(name_start..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b':'))
                .count();
            if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
                // A bare `<`, as in `a < b`: text up to the next one.
                self.pos = next_lt(start + 1);
                return Some((Tok::Text(&src[start..self.pos]), self.pos));
            }
            let name_end = name_start + name_len;
            let close = self.tag_end(name_end);
            self.pos = (close + 1).min(b.len());
            let name = &src[name_start..name_end];
            if closing {
                return Some((Tok::Close(name), self.pos));
            }
            let raw_end: &[u8] = match name.to_ascii_lowercase().as_str() {
                "script" => b"</script",
                "style" => b"</style",
                _ => return Some((Tok::Open(name, &src[name_end..close]), self.pos)),
            };
            self.pos = find_ci(b, self.pos, raw_end)
                .map_or(b.len(), |i| (self.tag_end(i) + 1).min(b.len()));
        }
    }
}

impl Lexer<'_> {
    /// The `>` ending a tag, outside quotes; when a stray quote never
    /// closes (malformed markup), the first `>` at all, so one typo does not
    /// swallow the rest of the page.
    fn tag_end(&mut self, from: usize) -> usize {
        let b = self.src.as_bytes();
        if !self.stray_quote {
            let mut quote = None;
            for (i, &c) in b.iter().enumerate().skip(from) {
                match (quote, c) {
                    (None, b'>') => return i,
                    (None, b'"' | b'\'') => quote = Some(c),
                    (Some(q), _) if q == c => quote = None,
                    _ => {}
                }
            }
            self.stray_quote = quote.is_some();
        }
        find_byte(b, from, b'>')
    }
}

/// The first `byte` at or after `from`, else the end.
fn find_byte(b: &[u8], from: usize, byte: u8) -> usize {
    b.get(from..)
        .and_then(|r| r.iter().position(|&c| c == byte))
        .map_or(b.len(), |i| from + i)
}

/// Where an ASCII `needle` starts at or after `from`, ignoring ASCII case.
pub(super) fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|i| from + i)
}

/// The value of attribute `want` (any case, any quotes, or none).
fn attr<'a>(attrs: &'a str, want: &str) -> Option<&'a str> {
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b'/')
        {
            i += 1;
        }
        let name_start = i;
        while b
            .get(i)
            .is_some_and(|c| !c.is_ascii_whitespace() && !matches!(c, b'=' | b'/'))
        {
            i += 1;
        }
        let name = &attrs[name_start..i];
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let mut value = "";
        if b.get(i) == Some(&b'=') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if let Some(&q) = b.get(i).filter(|c| matches!(c, b'"' | b'\'')) {
                let end = find_byte(b, i + 1, q);
                value = &attrs[i + 1..end];
                i = end + 1;
            } else {
                let start = i;
                while b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    i += 1;
                }
                value = &attrs[start..i];
            }
        } else if i == name_start {
            i += 1; // An ASCII byte the name loop refused: step over it.
        }
        if !name.is_empty() && name.eq_ignore_ascii_case(want) {
            return Some(value);
        }
    }
    None
}

/// The language a `<pre>`, `<code>` or wrapping `<div>` declares: a
/// `data-lang`, a prefixed class (`language-x`, `lang-x`,
/// `highlight-source-x`), else a bare class or `lang` that is a known name.
fn lang_of(attrs: &str) -> Declared {
    for key in ["data-lang", "data-language"] {
        if let Some(v) = attr(attrs, key).filter(|v| !v.trim().is_empty()) {
            return declared(v);
        }
    }
    let classes = attr(attrs, "class").unwrap_or("");
    let prefixes = ["language-", "lang-", "highlight-source-", "highlight-text-"];
    if let Some(c) = classes.split_whitespace().find(|c| {
        prefixes
            .iter()
            .any(|p| c.to_ascii_lowercase().starts_with(p))
    }) {
        return declared(c);
    }
    classes
        .split_whitespace()
        .chain(attr(attrs, "lang"))
        .find_map(normalize_language)
        .map_or(Declared::Unsaid, Declared::Known)
}

/// Elements whose text inside a `<pre>` is chrome, not code: line-number
/// gutters and copy buttons.
fn is_chrome(name: &str, attrs: &str) -> bool {
    name == "button"
        || attr(attrs, "class").is_some_and(|c| {
            c.split_whitespace().any(|c| {
                let c = c.to_ascii_lowercase();
                matches!(
                    c.as_str(),
                    "ln" | "lnt" | "gutter" | "blob-num" | "hljs-ln-numbers"
                ) || c.contains("line-number")
                    || c.contains("linenumber")
                    || c.contains("lineno")
            })
        })
}

/// Elements that end an open `<p>` (HTML lets `</p>` be omitted).
const BLOCK_ELEMENTS: &[&str] = &[
    "p",
    "div",
    "pre",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "section",
    "article",
    "aside",
    "blockquote",
    "header",
    "footer",
    "nav",
    "main",
    "figure",
    "hr",
    "form",
    "dl",
    "details",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];
const VOID_ELEMENTS: &[&str] = &["br", "img", "hr", "input", "wbr", "meta", "link", "source"];

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

/// A `<pre>` or a standalone `<code>` being read.
struct Code {
    in_pre: bool,
    declared: Declared,
    buf: String,
    /// Whether `buf` holds more than whitespace: line breaks that markup
    /// (`<br>`, line `<div>`s) makes before that are not lines of the
    /// source, and would put [`Block::line`] off.
    has_text: bool,
    line: usize,
    title: Option<String>,
    context: Option<String>,
    /// `<pre>`s nested inside, whose `</pre>` is not ours.
    depth: usize,
    /// The chrome element being skipped and how deep in it we are.
    skip: Option<(String, usize)>,
    /// A line-per-`<div>` highlighter ended a line; emit it unless the
    /// source has its own newline.
    newline_due: bool,
    /// The open paragraph's length when a standalone `<code>` began, to
    /// take its text back out if it becomes a block.
    para_mark: usize,
}

#[derive(Default)]
struct Walker {
    out: Vec<Block>,
    title: Option<String>,
    context: Option<String>,
    para: Option<String>,
    heading: Option<(u8, String)>,
    /// A language from a wrapping `<div class="highlight-source-x">`
    /// (GitHub) for the `<pre>` right inside it.
    wrapper: Option<Declared>,
    code: Option<Code>,
    line_pos: usize,
    line_no: usize,
}

pub(super) fn extract(body: &str) -> Vec<Block> {
    let mut w = Walker {
        line_no: 1,
        ..Walker::default()
    };
    for (tok, end) in (Lexer {
        src: body,
        pos: 0,
        stray_quote: false,
    }) {
        match tok {
            Tok::Text(t) => w.text(t),
            Tok::Open(name, attrs) => {
                let line = w.line_at(body, end);
                w.open(&name.to_ascii_lowercase(), attrs, line);
            }
            Tok::Close(name) => w.close(&name.to_ascii_lowercase()),
        }
    }
    w.finish_code();
    w.out
}

impl Walker {
    fn line_at(&mut self, body: &str, pos: usize) -> usize {
        let newlines = body.as_bytes().get(self.line_pos..pos).unwrap_or_default();
        self.line_no += newlines.iter().filter(|&&b| b == b'\n').count();
        self.line_pos = pos.max(self.line_pos);
        self.line_no
    }

    fn text(&mut self, t: &str) {
        if let Some(c) = &mut self.code {
            if c.skip.is_none() {
                let d = decode(t);
                if c.newline_due && !d.is_empty() {
                    if !d.starts_with(['\n', '\r']) {
                        c.buf.push('\n');
                    }
                    c.newline_due = false;
                }
                c.has_text |= !d.trim().is_empty();
                c.buf.push_str(&d);
            }
            if c.in_pre {
                return;
            }
        }
        // Inline `<code>` falls through: its text is the prose's too.
        match (&mut self.heading, &mut self.para) {
            (Some((_, h)), _) => h.push_str(&decode(t)),
            (None, Some(p)) => p.push_str(&decode(t)),
            (None, None) if !t.trim().is_empty() => self.wrapper = None,
            (None, None) => {}
        }
    }

    fn open(&mut self, name: &str, attrs: &str, line: usize) {
        if let Some(c) = &mut self.code {
            if let Some((skipped, depth)) = &mut c.skip {
                *depth += usize::from(skipped == name);
                return;
            }
            match name {
                "br" if c.has_text => c.buf.push('\n'),
                "code" if c.in_pre && matches!(c.declared, Declared::Unsaid) => {
                    c.declared = lang_of(attrs);
                }
                "pre" if c.in_pre => c.depth += 1,
                _ => {}
            }
            let void = VOID_ELEMENTS.contains(&name) || attrs.trim_end().ends_with('/');
            if !matches!(name, "pre" | "code") && !void && is_chrome(name, attrs) {
                c.skip = Some((name.to_string(), 1));
            }
            if c.in_pre || !(name == "pre" || BLOCK_ELEMENTS.contains(&name)) {
                return;
            }
            // Markup an inline `<code>` cannot hold ends it.
            self.finish_code();
        }
        if BLOCK_ELEMENTS.contains(&name) {
            self.end_paragraph();
        }
        if let Some(level) = heading_level(name) {
            self.heading = Some((level, String::new()));
            return;
        }
        match name {
            "p" => self.para = Some(String::new()),
            "br" => self.text(" "),
            "pre" => {
                let declared = match (lang_of(attrs), self.wrapper.take()) {
                    (Declared::Unsaid, Some(outer)) => outer,
                    (own, _) => own,
                };
                self.start_code(true, declared, line);
            }
            "code" => self.start_code(false, lang_of(attrs), line),
            "div" | "figure" => {
                let d = lang_of(attrs);
                if !matches!(d, Declared::Unsaid) {
                    self.wrapper = Some(d);
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        if let Some(c) = &mut self.code {
            if name == "pre" {
                c.skip = None; // an unclosed gutter must not swallow the block
            }
            if let Some((skipped, depth)) = &mut c.skip {
                if skipped == name {
                    *depth -= 1;
                    if *depth == 0 {
                        c.skip = None;
                    }
                }
                return;
            }
            if c.in_pre {
                match name {
                    "pre" if c.depth > 0 => c.depth -= 1,
                    "pre" => self.finish_code(),
                    "div" | "p" | "li" | "tr" => c.newline_due = c.has_text,
                    _ => {}
                }
                return;
            }
            if name == "code" || BLOCK_ELEMENTS.contains(&name) {
                self.finish_code();
            }
        }
        if heading_level(name).is_some() {
            if let Some((level, text)) = self.heading.take() {
                let text =
                    clip(text.trim_matches(|c: char| c == '#' || c == '¶' || c.is_whitespace()));
                if level <= 3 && !text.is_empty() {
                    self.title = Some(text);
                }
                self.context = None;
                self.para = None;
            }
        } else if BLOCK_ELEMENTS.contains(&name) {
            self.end_paragraph();
        }
    }

    fn end_paragraph(&mut self) {
        if let Some(p) = self.para.take().map(|p| clip(&p)).filter(|p| !p.is_empty()) {
            self.context = Some(p);
        }
    }

    fn start_code(&mut self, in_pre: bool, declared: Declared, line: usize) {
        self.code = Some(Code {
            in_pre,
            declared,
            buf: String::new(),
            has_text: false,
            line,
            title: self.title.clone(),
            context: self.context.clone(),
            depth: 0,
            skip: None,
            newline_due: false,
            para_mark: self.para.as_ref().map_or(0, String::len),
        });
    }

    fn finish_code(&mut self) {
        let Some(c) = self.code.take() else {
            return;
        };
        if !c.in_pre {
            if !c.buf.trim().contains('\n') {
                return; // inline code: already part of the prose
            }
            if let Some(p) = &mut self.para
                && p.is_char_boundary(c.para_mark)
            {
                p.truncate(c.para_mark);
            }
        }
        // Computed only now: inline `<code>`s are many, blocks few.
        let open = self.para.as_deref().map(clip).filter(|p| !p.is_empty());
        let context = open.or(c.context);
        self.out
            .extend(block(&c.buf, c.declared, c.title, context, c.line));
    }
}

/// Decodes character references: the named ones code and prose use, and
/// numeric ones. `&nbsp;` becomes a plain space (code wants no U+00A0); an
/// invalid number becomes U+FFFD; anything unknown is kept as written.
fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let semi = tail.bytes().take(12).position(|b| b == b';');
        match semi.and_then(|j| Some((entity(&tail[..j])?, j))) {
            Some((c, j)) => {
                out.push(c);
                rest = &tail[j + 1..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let n = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return Some(match char::from_u32(n) {
            Some('\u{a0}') => ' ',
            Some(c) if c != '\0' => c,
            _ => '\u{fffd}',
        });
    }
    Some(match name {
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "amp" | "AMP" => '&',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "times" => '×',
        "middot" => '·',
        "rarr" => '→',
        "larr" => '←',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &str = r##"<!DOCTYPE html>
<HTML lang="en">
<head>
  <title>Fast KV in Rust</title>
  <script>
    function highlight() { document.querySelectorAll('pre code').forEach(el => hljs.highlightElement(el)); }
    const sample = "<pre><code>fn not_this() { let x = 1; }\n</code></pre>";
  </script>
  <style>pre { background: #222; } .hljs-keyword { color: #c678dd; }</style>
</head>
<body>
<nav><a href="/">Home</a></nav>
<article>
<h1>Fast KV in Rust</h1>
<p>Caching   with <code>HashMap</code> &amp; friends &mdash; a tour. 🦀</p>
<h2 id="setup">Setup <a href="#setup">#</a></h2>
<p>First, the entry point.
It reads a <em>config</em> file:</p>
<pre><code class="hljs language-rust"><span class="hljs-keyword">use</span> std::collections::HashMap;

<span class="hljs-keyword">fn</span> <span class="hljs-title function_">main</span>() {
    <span class="hljs-keyword">let</span> <span class="hljs-keyword">mut</span> cache: HashMap&lt;&amp;<span class="hljs-type">str</span>, <span class="hljs-type">u32</span>&gt; = HashMap::new();
    cache.insert(&quot;hits&quot;, <span class="hljs-number">1</span>);
    <span class="hljs-built_in">println!</span>(<span class="hljs-string">&quot;{:?}&quot;</span>, cache);
}
</code></pre>
<p>Then the page that shows it:</p>
<PRE CLASS='line-numbers language-html'><CODE><span class="token tag">&lt;div</span> <span class="token attr-name">id</span>=<span class="token attr-value">&quot;app&quot;</span><span class="token tag">&gt;</span>
  <span class="token tag">&lt;p&gt;</span>It&#39;s&nbsp;here &#x27;now&#x27; &#8212; 日本語<span class="token tag">&lt;/p&gt;</span>
<span class="token tag">&lt;/div&gt;</span></CODE></PRE>
<h3>Schema</h3>
<p>A sample:</p>
<div class="highlight highlight-source-sql notranslate"><pre>CREATE TABLE kv (
  key TEXT PRIMARY KEY,
  value BLOB
);</pre></div>
<p>Install with <code>cargo add kv</code>.</p>
<pre>cargo add kv</pre>
<p>Unhighlighted, no class:</p>
<pre>
export function sum(xs: number[]): number {
  return xs.reduce((a, b) =&gt; a + b, 0);
}
</pre>
</article>
</body>
</HTML>
"##;

    #[test]
    fn a_highlighted_blog_post_yields_clean_code() {
        let blocks = extract(POST);
        let summary: Vec<_> = blocks
            .iter()
            .map(|b| {
                (
                    b.language.as_deref(),
                    b.title.as_deref(),
                    b.context.as_deref(),
                )
            })
            .collect();
        let entry = "First, the entry point. It reads a config file:";
        assert_eq!(
            summary,
            [
                (Some("rust"), Some("Setup"), Some(entry)),
                (
                    Some("html"),
                    Some("Setup"),
                    Some("Then the page that shows it:")
                ),
                (Some("sql"), Some("Schema"), Some("A sample:")),
                (
                    Some("typescript"),
                    Some("Schema"),
                    Some("Unhighlighted, no class:")
                ),
            ]
        );
        assert_eq!(
            blocks[0].code,
            "use std::collections::HashMap;\n\nfn main() {\n    let mut cache: HashMap<&str, u32> \
             = HashMap::new();\n    cache.insert(\"hits\", 1);\n    println!(\"{:?}\", cache);\n}"
        );
        assert_eq!(
            blocks[1].code,
            "<div id=\"app\">\n  <p>It's here 'now' — 日本語</p>\n</div>"
        );
        let line = |needle: &str| POST.lines().position(|l| l.contains(needle)).map(|i| i + 1);
        assert_eq!(Some(blocks[0].line), line("std::collections"));
        assert_eq!(Some(blocks[3].line), line("export function sum"));
        // Neither the script's code-like text nor inline code is a block.
        assert!(
            blocks
                .iter()
                .all(|b| !b.code.contains("not_this") && !b.code.contains("hljs"))
        );
    }

    #[test]
    fn malformed_markup_still_yields_its_code() {
        let body = "<p>if a < b then</p><pre class=language-rust data-x='a>b'><code>fn main() {\n    \
                    let s = \"unterminated\";\n";
        let blocks = extract(body);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].code, "fn main() {\n    let s = \"unterminated\";");
        assert_eq!(blocks[0].language.as_deref(), Some("rust"));
        assert_eq!(blocks[0].context.as_deref(), Some("if a < b then"));
    }

    #[test]
    fn gutters_line_divs_and_breaks_are_undone() {
        let body = concat!(
            "<pre><code><span class=\"ln\">1</span>fn alpha() {}\n",
            "<span class=\"ln\">2</span>fn beta() {}\n</code><button>Copy</button></pre>",
            "<pre><div class=\"line\">let a = 1;</div><div class=\"line\">let b = 2;</div></pre>",
            "<pre>SELECT *<br>FROM users<br/>WHERE id = 1;</pre>",
            "<table><tr><td><pre>1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11</pre></td></tr></table>",
        );
        let codes: Vec<_> = extract(body).into_iter().map(|b| b.code).collect();
        assert_eq!(
            codes,
            [
                "fn alpha() {}\nfn beta() {}",
                "let a = 1;\nlet b = 2;",
                "SELECT *\nFROM users\nWHERE id = 1;"
            ]
        );
    }

    #[test]
    fn standalone_code_counts_only_when_it_spans_lines() {
        let body = "<p>Call <code>init()</code> first:</p>\n<code class=\"language-python\">def f(x):\n    \
                    return x * 2</code>\n<code>const one = 1;</code>";
        let blocks = extract(body);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].code, "def f(x):\n    return x * 2");
        // Declared as another language: kept, but not guessed into ours.
        assert_eq!(blocks[0].language, None);
        assert_eq!(blocks[0].context.as_deref(), Some("Call init() first:"));
    }

    #[test]
    fn entities_decode_and_bad_ones_stay_harmless() {
        let cases = [
            ("&lt;a&gt; &amp;&amp; &quot;b&quot;", "<a> && \"b\""),
            ("&#39;&#x27;&#X41;&#8212;&nbsp;&#160;", "''A—  "),
            ("&#0;&#xD800;&#x110000;", "\u{fffd}\u{fffd}\u{fffd}"),
            (
                "&amp &unknown; &; &#; &#x; 🦀&lt;",
                "&amp &unknown; &; &#; &#x; 🦀<",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(decode(raw), want, "{raw}");
        }
        assert_eq!(
            attr(r#"CLASS='a b' data-x="1" hidden id=z"#, "class"),
            Some("a b")
        );
        assert_eq!(attr("hidden id=z", "id"), Some("z"));
        assert_eq!(attr("hidden", "hidden"), Some(""));
        assert_eq!(attr("clas=\"x", "class"), None);
    }
}
