//! Markdown in, safe HTML out.
//!
//! Posts are CommonMark (plus tables and strikethrough) rendered by
//! `pulldown-cmark`, then sanitized by `ammonia` against a strict allow-list:
//! only the tags Markdown itself produces, no event handlers or `style`
//! beyond table alignment, only `http`, `https` and `mailto` URLs, and
//! `rel="nofollow ugc"` on every link. Raw HTML in a post goes through the
//! same filter, so it can format but never script.
//!
//! Whether a post links or embeds images is read from the *sanitized*
//! output, where every `<a` and `<img` is a real element (text `<` is
//! escaped): Markdown links, autolinks, images and raw `<a>`/`<img>` all
//! count, and nothing else does.

use std::collections::{HashMap, HashSet};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// What a trust-level-0 member may not post.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Media {
    pub links: bool,
    pub images: bool,
}

impl Media {
    /// What the post contains that TL0 may not post, for the error message.
    pub fn refused(self) -> Option<&'static str> {
        match (self.links, self.images) {
            (true, true) => Some("links and images"),
            (true, false) => Some("links"),
            (false, true) => Some("images"),
            (false, false) => None,
        }
    }
}

/// A post body rendered and sanitized.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    pub media: Media,
}

/// Renders `markdown` to sanitized HTML and notes its links and images.
pub fn render(markdown: &str) -> Rendered {
    let html = sanitize(&to_html(markdown));
    let media = media_in(&html);
    Rendered { html, media }
}

fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 3 / 2 + 16);
    html::push_html(&mut out, Parser::new_ext(markdown, options()));
    out
}

/// Cleans HTML against the forum's allow-list.
pub fn sanitize(html: &str) -> String {
    let tags: HashSet<&str> = [
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "code",
        "em",
        "strong",
        "del",
        "s",
        "sub",
        "sup",
        "kbd",
        "ul",
        "ol",
        "li",
        "a",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]
    .into_iter()
    .collect();
    let attributes: HashMap<&str, HashSet<&str>> = [
        ("a", ["href", "title"].into_iter().collect()),
        ("img", ["src", "alt", "title"].into_iter().collect()),
        ("ol", ["start"].into_iter().collect()),
        ("th", ["style"].into_iter().collect()),
        ("td", ["style"].into_iter().collect()),
        ("code", ["class"].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    ammonia::Builder::empty()
        .tags(tags)
        .tag_attributes(attributes)
        .generic_attributes(HashSet::new())
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("nofollow ugc"))
        .filter_style_properties(["text-align"].into_iter().collect())
        .attribute_filter(|element, attribute, value| match (element, attribute) {
            ("code", "class") => is_language_class(value).then(|| value.into()),
            _ => Some(value.into()),
        })
        .clean(html)
        .to_string()
}

/// `language-rust` and the like, as pulldown-cmark writes for fenced code.
fn is_language_class(class: &str) -> bool {
    class.strip_prefix("language-").is_some_and(|lang| {
        (1..=32).contains(&lang.len())
            && lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'#'))
    })
}

/// Links and images in sanitized HTML.
fn media_in(html: &str) -> Media {
    let has_tag = |name: &str| {
        html.match_indices('<').any(|(i, _)| {
            let rest = &html[i + 1..];
            rest.strip_prefix(name)
                .is_some_and(|after| after.starts_with([' ', '>', '/']))
        })
    };
    Media {
        links: has_tag("a"),
        images: has_tag("img"),
    }
}

/// The HTML placed before a reply that quotes `text` from post `number`
/// by `name`.
pub fn quote_html(number: u32, name: &str, text: &str) -> String {
    format!(
        "<blockquote class=\"quote\" data-post=\"{number}\"><p><strong>{} wrote:</strong></p>{}</blockquote>",
        escape(name),
        sanitize(&to_html(text))
    )
}

/// Why `quote` cannot quote a post whose raw body is `source`, if it
/// cannot: it must be a non-empty part of it.
pub fn check_quote(quote: &str, source: &str) -> Result<String, &'static str> {
    let quote = quote.trim();
    if quote.is_empty() {
        return Err("must not be empty");
    }
    if !source.contains(quote) {
        return Err("must be a part of the quoted post's text");
    }
    Ok(quote.to_owned())
}

/// The text of `markdown` without markup, whitespace collapsed: what search
/// indexes and excerpts show.
pub fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Text(text) | Event::Code(text) => out.push_str(&text),
            Event::SoftBreak
            | Event::HardBreak
            | Event::Rule
            | Event::Start(Tag::Item)
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::CodeBlock
                | TagEnd::TableCell
                | TagEnd::Item,
            ) => out.push(' '),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters of [`plain_text`], ending in `…` if cut.
pub fn excerpt(markdown: &str, max: usize) -> String {
    truncate(&plain_text(markdown), max)
}

/// `text` cut to at most `max` characters, ending in `…` if cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown() {
        let r = render("# Title\n\nSome *em* and **strong** and `code`.\n\n- a\n- b\n");
        assert!(r.html.contains("<h1>Title</h1>"), "{}", r.html);
        assert!(r.html.contains("<em>em</em>"));
        assert!(r.html.contains("<strong>strong</strong>"));
        assert!(r.html.contains("<code>code</code>"));
        assert!(r.html.contains("<li>a</li>"));
        assert_eq!(r.media, Media::default());
    }

    #[test]
    fn strips_scripts_handlers_and_bad_urls() {
        let r = render(
            "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) \
             <a href=\"javascript:alert(2)\" onclick=\"alert(3)\">y</a> \
             <p style=\"color:red\" onmouseover=\"alert(4)\">z</p> <iframe src=\"https://evil\"></iframe>",
        );
        let html = r.html.to_lowercase();
        for bad in [
            "<script",
            "alert(1)",
            "onerror",
            "javascript:",
            "onclick",
            "onmouseover",
            "style=",
            "<iframe",
        ] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
    }

    #[test]
    fn links_get_nofollow_ugc() {
        let r = render("see [the docs](https://example.com/a?b=1&c=2)");
        assert!(
            r.html.contains(
                r#"<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow ugc">the docs</a>"#
            ),
            "{}",
            r.html
        );
        assert!(r.media.links && !r.media.images);
        // A rel the author writes is replaced, not kept.
        let r = render(r#"<a href="https://x.test" rel="me">x</a>"#);
        assert!(r.html.contains(r#"rel="nofollow ugc""#) && !r.html.contains("rel=\"me\""));
    }

    #[test]
    fn finds_links_and_images_in_every_form() {
        let cases = [
            ("[a](https://x.test)", true, false),
            ("<https://x.test>", true, false),
            ("<someone@x.test>", true, false),
            ("[a][1]\n\n[1]: https://x.test", true, false),
            ("![alt](https://x.test/i.png)", false, true),
            (r#"<A HREF="https://x.test">x</A>"#, true, false),
            (r#"<img src="https://x.test/i.png">"#, false, true),
            ("[![i](https://x.test/i.png)](https://x.test)", true, true),
            ("plain https://x.test is text", false, false),
            ("`<a href=\"x\">` in code", false, false),
            ("a <abbr>abbr</abbr> is not a link", false, false),
            ("an [unresolved] reference", false, false),
        ];
        for (md, links, images) in cases {
            let media = render(md).media;
            assert_eq!((media.links, media.images), (links, images), "{md}");
        }
        assert_eq!(
            render("![i](https://x.test/i.png)").media.refused(),
            Some("images")
        );
        assert_eq!(render("x").media.refused(), None);
    }

    #[test]
    fn keeps_tables_and_code_languages() {
        let r = render("| a | b |\n|:-:|--|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n");
        assert!(r.html.contains("<table>"), "{}", r.html);
        assert!(r.html.contains("text-align:center"), "{}", r.html);
        assert!(
            r.html.contains(r#"<code class="language-rust">"#),
            "{}",
            r.html
        );
        let r = render("<code class=\"evil x\">x</code>");
        assert!(!r.html.contains("class"), "{}", r.html);
    }

    #[test]
    fn quotes_are_checked_and_rendered() {
        let source = "The quick brown fox jumps.";
        assert_eq!(
            check_quote(" brown fox ", source),
            Ok("brown fox".to_owned())
        );
        assert!(check_quote("   ", source).is_err());
        assert!(check_quote("lazy dog", source).is_err());
        let html = quote_html(3, "Ann <b>", "brown *fox*");
        assert!(html.starts_with(
            r#"<blockquote class="quote" data-post="3"><p><strong>Ann &lt;b&gt; wrote:</strong></p>"#
        ), "{html}");
        assert!(html.contains("<em>fox</em>") && html.ends_with("</blockquote>"));
        assert!(!quote_html(1, "x", "<script>x</script>").contains("<script"));
    }

    #[test]
    fn plain_text_and_excerpts() {
        assert_eq!(
            plain_text("# Head\n\nSome *em* [link](https://x.test) `code`\n\n- a\n- b"),
            "Head Some em link code a b"
        );
        assert_eq!(excerpt("short", 200), "short");
        let long = "word ".repeat(100);
        let cut = excerpt(&long, 200);
        assert!(cut.chars().count() <= 200 && cut.ends_with('…'));
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
