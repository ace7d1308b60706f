//! Fenced code blocks of Markdown, with their section heading and the
//! paragraph before them.

use super::{Block, MAX_CONTEXT_CHARS, block, clip, declared};

/// An opening fence: its character, its length and its info string.
pub(super) fn fence_open(line: &str) -> Option<(u8, usize, &str)> {
    let t = line.trim_start();
    let ch = *t.as_bytes().first()?;
    let n = t.bytes().take_while(|&b| b == ch).count();
    if !(ch == b'`' || ch == b'~') || n < 3 {
        return None;
    }
    let info = t[n..].trim();
    // ```foo``` on one line is inline code, not a fence.
    (ch == b'~' || !info.contains('`')).then_some((ch, n, info))
}

fn fence_closes(line: &str, ch: u8, n: usize) -> bool {
    let t = line.trim();
    t.len() >= n && t.bytes().all(|b| b == ch)
}

fn indent_of(line: &str) -> usize {
    line.bytes()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .map(|b| if b == b'\t' { 4 } else { 1 })
        .sum()
}

fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let t = line.trim();
    let level = t.bytes().take_while(|&b| b == b'#').count();
    let rest = &t[level..];
    if indent_of(line) >= 4
        || level == 0
        || level > 6
        || !(rest.is_empty() || rest.starts_with([' ', '\t']))
    {
        return None;
    }
    let rest = rest.trim();
    let unclosed = rest.trim_end_matches('#');
    // `# C#` keeps its `#`; only a closing run after a space goes.
    let text = if unclosed.is_empty() || unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        rest
    };
    Some((level, text))
}

fn is_rule(t: &str, ch: char) -> bool {
    t.chars().filter(|&c| c == ch).count() >= 3 && t.chars().all(|c| c == ch || c == ' ')
}

/// The last lines of a paragraph that fit the context budget.
fn paragraph_context(lines: &[&str]) -> String {
    let mut total = 0;
    let keep = lines
        .iter()
        .rev()
        .take_while(|l| {
            total += l.chars().count() + 1;
            total <= MAX_CONTEXT_CHARS
        })
        .count()
        .max(1);
    clip(&lines[lines.len().saturating_sub(keep)..].join(" "))
}

pub(super) fn extract(body: &str) -> Vec<Block> {
    let lines: Vec<&str> = body.lines().collect();
    let mut out = Vec::new();
    let (mut title, mut context) = (None, None);
    let mut para: Vec<&str> = Vec::new();
    let mut i = 0;
    // YAML front matter would otherwise end in a setext heading.
    if lines.first().map(|l| l.trim_end()) == Some("---") {
        let end = lines
            .iter()
            .skip(1)
            .position(|l| matches!(l.trim_end(), "---" | "..."));
        i = end.map_or(0, |e| e + 2);
    }
    while let Some(&line) = lines.get(i) {
        i += 1;
        let t = line.trim();
        let flush = |para: &mut Vec<&str>, context: &mut Option<String>| {
            if !para.is_empty() {
                *context = Some(paragraph_context(para));
                para.clear();
            }
        };
        if let Some((ch, n, info)) = fence_open(line) {
            flush(&mut para, &mut context);
            let start = i;
            while lines.get(i).is_some_and(|l| !fence_closes(l, ch, n)) {
                i += 1;
            }
            let raw = lines.get(start..i).unwrap_or_default().join("\n");
            i += 1;
            let tag = declared(info.split_whitespace().next().unwrap_or(""));
            out.extend(block(&raw, tag, title.clone(), context.clone(), start + 1));
        } else if t.is_empty() {
            flush(&mut para, &mut context);
        } else if let Some((level, text)) = atx_heading(line) {
            para.clear();
            context = None;
            if level <= 3 && !text.is_empty() {
                title = Some(clip(text));
            }
        } else if !para.is_empty() && indent_of(line) < 4 && (is_rule(t, '=') || is_rule(t, '-')) {
            title = Some(clip(&para.join(" ")));
            para.clear();
            context = None;
        } else if para.is_empty() && (indent_of(line) >= 4 || is_rule(t, '-') || is_rule(t, '*')) {
            // An indented code block (ignored by design) or a thematic break.
        } else {
            para.push(t.trim_start_matches('>').trim());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = r#"# weft-kv

A tiny key-value store for Weft plugins. 🦀 日本語も大丈夫。

## Install

Add it to your `Cargo.toml`:

```toml
[dependencies]
weft-kv = "0.3"
serde = { version = "1", features = ["derive"] }
```

Or use the CLI:

```sh
cargo add weft-kv
```

## Usage

Open a store and put a value.
The store is per tenant.

```rust,no_run
use weft_kv::Store;

fn main() -> Result<(), weft_kv::Error> {
    let store = Store::open("data")?;
    store.put("greeting", "hello")?;
    Ok(())
}
```

    indented code is ignored
    because fences are what authors mean

~~~~ts title="client.ts"
export async function get(key: string): Promise<string | null> {
  const res = await fetch(`/kv/${key}`);
  return res.ok ? res.text() : null;
}
~~~~

### Schema

```
CREATE TABLE kv (
  tenant_id BIGINT NOT NULL,
  key TEXT NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
```
"#;

    fn line_of(body: &str, needle: &str) -> usize {
        body.lines()
            .position(|l| l.contains(needle))
            .map_or(0, |i| i + 1)
    }

    #[test]
    fn a_readme_yields_its_blocks_with_headings_and_prose() {
        let blocks = extract(README);
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
        assert_eq!(
            summary,
            [
                (
                    Some("toml"),
                    Some("Install"),
                    Some("Add it to your `Cargo.toml`:")
                ),
                (
                    Some("rust"),
                    Some("Usage"),
                    Some("Open a store and put a value. The store is per tenant.")
                ),
                (
                    Some("typescript"),
                    Some("Usage"),
                    Some("Open a store and put a value. The store is per tenant.")
                ),
                // Untagged: guessed; a new heading starts a new context.
                (Some("sql"), Some("Schema"), None),
            ]
        );
        let rust = &blocks[1];
        assert_eq!(
            rust.code,
            "use weft_kv::Store;\n\nfn main() -> Result<(), weft_kv::Error> {\n    let store = \
             Store::open(\"data\")?;\n    store.put(\"greeting\", \"hello\")?;\n    Ok(())\n}"
        );
        assert_eq!(rust.line, line_of(README, "use weft_kv::Store"));
        assert_eq!(blocks[0].line, line_of(README, "[dependencies]"));
        assert!(blocks.iter().all(|b| !b.code.contains("indented code")));
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        let body = "# T\n\n```rust\nfn main() {\n    println!(\"never closed\");\n";
        let blocks = extract(body);
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            blocks[0].code,
            "fn main() {\n    println!(\"never closed\");"
        );
        assert_eq!((blocks[0].line, blocks[0].title.as_deref()), (4, Some("T")));
    }

    #[test]
    fn a_longer_fence_holds_shorter_ones_and_other_languages_are_not_guessed() {
        let body = "````markdown\n```rust\nfn x() { let a = 1; }\n```\n```\n````\n";
        let blocks = extract(body);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].code, "```rust\nfn x() { let a = 1; }\n```\n```");
        assert_eq!(blocks[0].language, None);
        // ```inline``` on one line is not a fence.
        assert!(extract("Use ```x``` here.\nfn main() {}\nlet a = 1;\n").is_empty());
    }

    #[test]
    fn front_matter_setext_headings_and_list_items() {
        let body = "---\ntitle: Post\n---\nGetting started\n===============\n\nRun this:\n\n\
                    1. In a shell:\n\n   ```\n   $ cargo run\n   $ curl localhost:3000   \n   ```\n";
        let blocks = extract(body);
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!(b.code, "$ cargo run\n$ curl localhost:3000");
        assert_eq!(b.language.as_deref(), Some("shell"));
        assert_eq!(b.title.as_deref(), Some("Getting started"));
        assert_eq!(b.context.as_deref(), Some("1. In a shell:"));
    }

    #[test]
    fn a_long_paragraph_keeps_its_last_lines() {
        let long = "word ".repeat(80);
        let body = format!(
            "{long}\n{long}\nThe example:\n\n```rust\nfn alpha() {{}}\nfn beta() {{}}\n```\n"
        );
        let context = extract(&body).remove(0).context.unwrap_or_default();
        assert!(
            context.chars().count() <= MAX_CONTEXT_CHARS + 1,
            "{context}"
        );
        assert_eq!(context, "The example:");
    }
}
