//! Which of the library's languages a tag names or a snippet is written in.

/// Language guessing reads this many non-empty lines: enough to decide,
/// and it bounds the cost on huge pasted bodies.
const GUESS_LINES: usize = 400;

/// Maps a fence info string or class name onto one of `rust`, `typescript`,
/// `tsx`, `javascript`, `sql`, `html`, `css`, `wit`, `toml`, `shell`.
///
/// Prefixes (`language-`, `lang-`, `highlight-source-`, `brush:`), rustdoc
/// attributes (`rust,ignore`), pandoc braces (`{.rust}`) and suffixes
/// (`html-basic`, `main.rs`) are looked through.
pub fn normalize_language(tag: &str) -> Option<&'static str> {
    let t = bare(tag);
    lookup(&t)
        .or_else(|| t.split('-').next().and_then(lookup))
        .or_else(|| t.rsplit('.').next().and_then(lookup))
}

/// Guesses the language of `code` from signals only that language has
/// (`fn`/`impl`/`use a::b` for Rust, a leading `SELECT … FROM` for SQL,
/// `className=` for TSX, `: string` for TypeScript, `package a:b` for WIT,
/// `[section]` + `key = value` for TOML, `$ ` prompts for shell, …). Each
/// language scores its signals; the best wins only with a score of 3 or
/// more and strictly ahead of the next, so a doubtful snippet gets `None`
/// rather than a wrong label.
pub fn guess_language(code: &str) -> Option<&'static str> {
    let lines: Vec<&str> = code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(GUESS_LINES)
        .collect();
    let first = *lines.first()?;
    if let Some(interpreter) = first.strip_prefix("#!") {
        return shebang(interpreter);
    }
    let text = lines.join("\n");
    let lower = text.to_ascii_lowercase();
    let has = |s: &str| text.contains(s);
    let hits = |list: &[&str], weight: usize| list.iter().filter(|s| has(s)).count() * weight;

    let jsx = hits(
        &[
            "className=",
            "useState(",
            "useEffect(",
            "import React",
            "onClick={",
        ],
        3,
    ) + usize::from(has("return (") && (has("</") || has("/>"))) * 3;
    let ts_signals = [
        ": string",
        ": number",
        ": boolean",
        ": void",
        ": any",
        ": unknown",
    ];
    let mut ts = hits(&ts_signals, 2)
        + hits(
            &[
                "): Promise<",
                "string[]",
                " as const",
                "readonly ",
                "Record<string",
            ],
            2,
        );
    let mut js = hits(
        &[
            "console.log(",
            "require(",
            "module.exports",
            "document.",
            "window.",
        ],
        2,
    ) + hits(
        &[
            "=== ",
            "!== ",
            "addEventListener(",
            "JSON.",
            ".then(",
            "process.env",
        ],
        2,
    ) + usize::from(has("=>"));
    let (mut rust, mut wit, mut sh) = (0, 0, 0);
    let rust_marks = [
        "println!(",
        "format!(",
        "vec![",
        "macro_rules!",
        "&self",
        "&mut ",
        "?;",
    ];
    rust += hits(&rust_marks, 2);
    rust += hits(
        &[
            "::new(",
            ".unwrap()",
            "Ok(())",
            "-> Result<",
            "&str",
            "Option<",
            "Vec<",
            "::",
        ],
        1,
    );
    for l in &lines {
        let item = strip_qualifiers(l);
        let rest = l.strip_prefix("export ").unwrap_or(l);
        if item.starts_with("fn ")
            || item.starts_with("impl ")
            || item.starts_with("impl<")
            || (item.starts_with("use ") && item.contains("::"))
            || l.starts_with("#[")
            || l.starts_with("#![")
        {
            rust += 3;
        } else if ["struct ", "trait ", "mod "]
            .iter()
            .any(|k| item.starts_with(k))
            || l.starts_with("let mut ")
            || (l.starts_with("let ") && (l.contains("::") || l.ends_with("?;")))
        {
            rust += 2;
        }
        if rest.starts_with("interface ")
            || l.starts_with("import type ")
            || l.starts_with("declare ")
        {
            ts += 3;
        }
        if rest.starts_with("type ") && rest.contains(" = ") {
            ts += 1;
        }
        if ["const ", "let ", "var "].iter().any(|k| declares(rest, k)) {
            js += 1;
        }
        if rest.starts_with("function ") || rest.starts_with("async function ") {
            js += 2;
        }
        if l.starts_with("export ") || (l.starts_with("import ") && l.contains(" from ")) {
            js += 1;
        }
        if l.starts_with("package ") && l.contains(':') && (l.ends_with(';') || l.ends_with('{')) {
            wit += 5;
        }
        // A WIT interface holds `name: func(...)`; a TypeScript one never does.
        if l.ends_with('{')
            && (l.starts_with("world ") || (l.starts_with("interface ") && has(": func(")))
        {
            wit += 3;
        }
        if ["use ", "import ", "export "]
            .iter()
            .any(|k| l.starts_with(k))
            && l.contains(':')
            && l.contains('/')
            && !l.contains("::")
            && !l.contains(['"', '\''])
        {
            wit += 3;
        }
        if l.contains(": func(") {
            wit += 2;
        }
        if l.starts_with("$ ") {
            sh += 3;
        } else if is_command(l) {
            sh += 2;
        }
        if l.contains(" && ")
            || l.contains(" | ")
            || l.ends_with(" \\")
            || *l == "fi"
            || *l == "done"
        {
            sh += 1;
        }
    }
    let script = if jsx >= 3 {
        ("tsx", jsx + ts + js)
    } else if ts >= 2 {
        ("typescript", ts + js)
    } else {
        ("javascript", js)
    };
    let mut html = 0;
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        html += 6;
    }
    if first.starts_with('<') && !first.starts_with("<?") {
        html += 1;
    }
    let tags = [
        "<div", "<span", "<p>", "<a href", "<body", "<head", "<ul", "<li>", "<table",
    ];
    let more = [
        "<form", "<input", "<button", "<meta ", "<link ", "<img ", "<h1", "<h2", "<nav",
    ];
    let tag_hits = tags
        .iter()
        .chain(&more)
        .filter(|t| lower.contains(*t))
        .count();
    html += tag_hits.min(4);
    if has("className=") {
        html = html.saturating_sub(3);
    }
    let scores = [
        ("rust", rust),
        ("sql", sql_score(&lines, &lower)),
        script,
        ("html", html),
        ("css", css_score(&lines)),
        ("wit", wit),
        ("toml", toml_score(&lines)),
        ("shell", sh),
    ];
    let (mut best, mut second) = (("", 0), 0);
    for (language, score) in scores {
        if score > best.1 {
            second = best.1;
            best = (language, score);
        } else if score > second {
            second = score;
        }
    }
    (best.1 >= 3 && best.1 > second).then_some(best.0)
}

/// A tag lower-cased with its prefixes and attributes cut off.
pub(super) fn bare(tag: &str) -> String {
    let mut t = tag.trim().to_ascii_lowercase();
    for prefix in [
        "language-",
        "lang-",
        "highlight-source-",
        "highlight-text-",
        "brush:",
        "source-",
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.to_string();
            break;
        }
    }
    let t = t.trim_start_matches(['{', '.', ' ']);
    let end = t
        .find([',', ':', '=', '{', '}', ' ', '\t'])
        .unwrap_or(t.len());
    t[..end].to_string()
}

fn lookup(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "rust" | "rs" => "rust",
        "typescript" | "ts" | "mts" | "cts" => "typescript",
        // The set has no `jsx`: JSX is a component like TSX, and a TSX
        // parser reads it.
        "tsx" | "jsx" | "typescriptreact" | "javascriptreact" => "tsx",
        "javascript" | "js" | "mjs" | "cjs" | "node" | "nodejs" | "ecmascript" => "javascript",
        "sql" | "postgresql" | "postgres" | "psql" | "pgsql" | "plpgsql" | "mysql" | "mariadb"
        | "sqlite" | "sqlite3" | "tsql" | "plsql" => "sql",
        "html" | "htm" | "xhtml" | "html5" => "html",
        "css" => "css",
        "wit" => "wit",
        "toml" => "toml",
        "shell" | "sh" | "bash" | "zsh" | "ksh" | "dash" | "console" | "terminal"
        | "shell-session" | "shellsession" | "sh-session" | "shell-script" | "shellscript" => {
            "shell"
        }
        _ => return None,
    })
}

fn shebang(interpreter: &str) -> Option<&'static str> {
    let mut words = interpreter.split_whitespace();
    let mut program = words.next()?.rsplit('/').next()?;
    if program == "env" {
        program = words.find(|w| !w.starts_with('-'))?;
    }
    match program {
        "sh" | "bash" | "zsh" | "ksh" | "dash" => Some("shell"),
        "node" => Some("javascript"),
        "deno" | "ts-node" | "bun" | "tsx" => Some("typescript"),
        "cargo" | "rust-script" => Some("rust"),
        _ => None,
    }
}

/// Removes what may precede a Rust item keyword (`pub(crate) async fn`).
fn strip_qualifiers(line: &str) -> &str {
    let mut l = line;
    loop {
        let before = l.len();
        for q in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "async ",
            "const ",
            "unsafe ",
            "extern \"C\" ",
        ] {
            l = l.strip_prefix(q).unwrap_or(l);
        }
        if l.len() == before {
            return l;
        }
    }
}

/// `const name =` and the like: a JavaScript declaration, not Rust's
/// `const NAME: T =`.
fn declares(line: &str, keyword: &str) -> bool {
    line.strip_prefix(keyword).is_some_and(|rest| {
        let name = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        name > 0 && rest[name..].trim_start().starts_with('=')
    })
}

/// Programs that begin a line of a shell session in documentation.
const COMMANDS: &[&str] = &[
    "cargo",
    "rustup",
    "rustc",
    "npm",
    "npx",
    "pnpm",
    "yarn",
    "bun",
    "deno",
    "node",
    "git",
    "curl",
    "wget",
    "docker",
    "podman",
    "kubectl",
    "helm",
    "apt",
    "apt-get",
    "brew",
    "sudo",
    "cd",
    "mkdir",
    "echo",
    "pip",
    "pip3",
    "make",
    "cp",
    "mv",
    "rm",
    "ls",
    "cat",
    "chmod",
    "ssh",
    "tar",
    "unzip",
    "wasm-tools",
    "wasmtime",
    "wasm-pack",
    "source",
    "grep",
    "touch",
    "jq",
    "gh",
    "systemctl",
];

fn is_command(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or("");
    // Prose ends with a full stop; commands rarely do.
    (COMMANDS.contains(&word)
        || word.starts_with("./")
        || line.starts_with("set -")
        || line
            .strip_prefix("export ")
            .is_some_and(|r| r.split(' ').next().is_some_and(|w| w.contains('='))))
        && !line.ends_with('.')
}

fn sql_score(lines: &[&str], lower: &str) -> usize {
    let Some(statement) = lines
        .iter()
        .find(|l| !l.starts_with("--"))
        .map(|l| l.to_ascii_lowercase())
    else {
        return 0;
    };
    let word = |w: &str| {
        statement
            .strip_prefix(w)
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '(', '*']))
    };
    let creates = [
        "table",
        "index",
        "unique",
        "view",
        "or replace",
        "extension",
        "schema",
        "function",
        "type",
        "trigger",
        "materialized",
        "database",
        "sequence",
        "policy",
        "role",
    ];
    let mut score = 0;
    if (word("select") && lower.contains("from"))
        || word("insert into")
        || (word("update") && lower.contains(" set "))
        || word("delete from")
        || word("alter table")
        || word("drop table")
        || word("drop index")
        || (word("with") && (lower.contains(" as (") || lower.contains("recursive")))
        || statement
            .strip_prefix("create ")
            .is_some_and(|r| creates.iter().any(|c| r.starts_with(c)))
    {
        score += 5;
    }
    let clauses = [
        " primary key",
        " references ",
        " not null",
        " join ",
        " where ",
        " group by ",
        " order by ",
    ];
    score + clauses.iter().filter(|c| lower.contains(*c)).count()
}

/// Property names (or their first part: `font` of `font-size`) that make a
/// `name: value;` line CSS rather than a TypeScript field.
const CSS_PROPERTIES: &[&str] = &[
    "color",
    "background",
    "margin",
    "padding",
    "display",
    "font",
    "width",
    "height",
    "border",
    "position",
    "top",
    "left",
    "right",
    "bottom",
    "flex",
    "grid",
    "gap",
    "align",
    "justify",
    "text",
    "line",
    "overflow",
    "opacity",
    "transform",
    "transition",
    "box",
    "max",
    "min",
    "z",
    "cursor",
    "content",
    "outline",
    "list",
    "animation",
    "letter",
    "white",
    "vertical",
    "float",
    "inset",
];
const CSS_TAGS: &[&str] = &[
    "html", "body", "a", "div", "p", "span", "h1", "h2", "h3", "ul", "ol", "li", "button", "input",
    "img", "table", "header", "footer", "nav", "main", "section", "pre", "code",
];

fn css_score(lines: &[&str]) -> usize {
    let (mut selectors, mut declarations) = (0, 0);
    for l in lines {
        if let Some(s) = l.strip_suffix('{').map(str::trim) {
            let head = s.split([' ', ',', ':', '.', '>', '[']).next().unwrap_or("");
            if !s.is_empty()
                && !s.contains(['=', ';'])
                && (s.starts_with(['.', '#', ':', '*', '@', '[']) || CSS_TAGS.contains(&head))
            {
                selectors += 1;
            }
        } else if let Some((property, value)) = l.strip_suffix(';').and_then(|d| d.split_once(':'))
        {
            let property = property.trim();
            let known = property.starts_with("--")
                || property.starts_with("-webkit-")
                || property
                    .split('-')
                    .next()
                    .is_some_and(|p| CSS_PROPERTIES.contains(&p));
            if known
                && !value.trim().is_empty()
                && property.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            {
                declarations += 1;
            }
        }
    }
    if selectors > 0 && declarations > 0 {
        2 + selectors.min(3) + declarations.min(4)
    } else {
        0
    }
}

fn toml_score(lines: &[&str]) -> usize {
    let (mut sections, mut pairs, mut foreign) = (0, 0, 0);
    for l in lines {
        if l.starts_with('#') {
            continue;
        }
        let inner = l.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        let inner = inner.map(|i| i.trim_matches(['[', ']']).trim());
        if inner
            .is_some_and(|i| !i.is_empty() && (!i.contains([',', ' ']) || i.contains(['"', '\''])))
        {
            sections += 1;
        } else if is_toml_pair(l) {
            pairs += 1;
        } else if !(l.starts_with(['"', '\'', ']', '}', '{']) || l.ends_with(',')) {
            // Not a continuation of a multi-line array or table either.
            foreign += 1;
        }
    }
    if foreign * 5 > sections + pairs + foreign {
        0
    } else if sections > 0 && pairs > 0 {
        2 + sections.min(2) + pairs.min(3)
    } else if pairs >= 3 {
        3
    } else {
        0
    }
}

fn is_toml_pair(line: &str) -> bool {
    let Some((key, value)) = line.split_once('=') else {
        return false;
    };
    let key = key.trim();
    let value = value.trim();
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.\"'".contains(c))
        && !value.starts_with(['=', '>'])
        && (value.starts_with(['"', '\'', '[', '{', '-', '+'])
            || value.starts_with(|c: char| c.is_ascii_digit())
            || value.starts_with("true")
            || value.starts_with("false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_map_onto_the_library_names() {
        let cases = [
            ("rust", Some("rust")),
            ("rs", Some("rust")),
            ("language-rust", Some("rust")),
            ("highlight-source-rust", Some("rust")),
            ("Rust,ignore", Some("rust")),
            ("{.rust .numberLines}", Some("rust")),
            ("main.rs", Some("rust")),
            ("lang-ts", Some("typescript")),
            ("typescript", Some("typescript")),
            ("TSX", Some("tsx")),
            ("jsx", Some("tsx")),
            ("js", Some("javascript")),
            ("brush:js", Some("javascript")),
            ("mjs", Some("javascript")),
            ("postgresql", Some("sql")),
            ("language-sql", Some("sql")),
            ("highlight-text-html-basic", Some("html")),
            ("html", Some("html")),
            ("css", Some("css")),
            ("wit", Some("wit")),
            ("toml", Some("toml")),
            ("sh", Some("shell")),
            ("bash", Some("shell")),
            ("console", Some("shell")),
            ("shell-session", Some("shell")),
            ("python", None),
            ("scss", None),
            ("text", None),
            ("", None),
            ("🦀", None),
            ("言語-rust", None),
        ];
        for (tag, want) in cases {
            assert_eq!(normalize_language(tag), want, "{tag:?}");
        }
    }

    #[test]
    fn snippets_are_guessed_or_left_alone() {
        let cases = [
            (
                "use std::collections::HashMap;\n\nfn main() {\n    let mut m = HashMap::new();\n}",
                Some("rust"),
            ),
            (
                "let client = reqwest::Client::new();\nlet body = client.get(url).send().await?;",
                Some("rust"),
            ),
            (
                "impl Id {\n    pub fn get(&self) -> u64 {\n        self.0\n    }\n}",
                Some("rust"),
            ),
            (
                "SELECT id, name\nFROM users\nWHERE active = true;",
                Some("sql"),
            ),
            (
                "create table items (\n  id bigint primary key,\n  owner bigint not null references users(id)\n);",
                Some("sql"),
            ),
            (
                "WITH recent AS (\n  SELECT * FROM events\n)\nSELECT count(*) FROM recent;",
                Some("sql"),
            ),
            (
                "export function Button({ label }: Props) {\n  return (\n    <button className=\"btn\">{label}</button>\n  );\n}",
                Some("tsx"),
            ),
            (
                "interface User {\n  id: number;\n  name: string;\n}\nexport function greet(u: User): string {\n  return u.name;\n}",
                Some("typescript"),
            ),
            (
                "const express = require('express');\nconst app = express();\napp.get('/', (req, res) => res.send('ok'));",
                Some("javascript"),
            ),
            (
                "<!DOCTYPE html>\n<html>\n  <body><p>Hello</p></body>\n</html>",
                Some("html"),
            ),
            ("<div class=\"card\">\n  <p>Hello</p>\n</div>", Some("html")),
            (
                ".card {\n  display: flex;\n  padding: 1rem;\n}",
                Some("css"),
            ),
            (
                "package weft:kv@0.1.0;\n\ninterface store {\n  get: func(key: string) -> option<list<u8>>;\n}",
                Some("wit"),
            ),
            (
                "world plugin {\n  import wasi:http/outgoing-handler@0.2.0;\n  export handle: func(r: request) -> response;\n}",
                Some("wit"),
            ),
            (
                "[package]\nname = \"demo\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = { version = \"1\" }",
                Some("toml"),
            ),
            (
                "#!/usr/bin/env bash\nset -euo pipefail\necho hi",
                Some("shell"),
            ),
            ("$ cargo new demo\n$ cd demo\n$ cargo run", Some("shell")),
            (
                "cargo build --release\ncp target/release/weft /usr/local/bin/",
                Some("shell"),
            ),
            (
                "def main():\n    print('hello')\n\nif __name__ == '__main__':\n    main()",
                None,
            ),
            (
                "The quick brown fox jumps over the lazy dog.\nIt was not amused.",
                None,
            ),
            ("#!/usr/bin/python3\nprint('hi')", None),
            ("", None),
            ("🦀🦀🦀\n日本語のテキスト", None),
        ];
        for (code, want) in cases {
            assert_eq!(guess_language(code), want, "{code}");
        }
    }
}
