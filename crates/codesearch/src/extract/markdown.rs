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
