//! The template engine: compiling a template's files once at load, and
//! rendering them over a set of answers.
//!
//! Tenants write templates too, so a render is bounded: every file gets a
//! fuel budget (template instructions), all files together share a larger
//! one, and output is written into a capped buffer so a loop cannot fill
//! the host's memory before the result is looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use crate::answers::Answers;
use crate::paths::{self, Rendered};
use crate::{Error, Result, case};

/// Template instructions one file may execute.
pub const FUEL_PER_FILE: u64 = 1_000_000;
/// Template instructions one render may execute across all files.
pub const FUEL_PER_RENDER: u64 = 10_000_000;
/// Bytes one render may produce across all files.
pub const MAX_OUTPUT_BYTES: usize = 32 << 20;

/// One file of a rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Relative, normalized, `/`-separated; never absolute, never with `..`.
    pub path: String,
    /// The rendered text (UTF-8) or the binary file as stored.
    pub bytes: Vec<u8>,
}

/// A stored file: text is compiled into the environment under its path,
/// binary files are kept as they are.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Text,
    Binary(Vec<u8>),
}

/// The name under which a file's path template is compiled. The prefix
/// tells [`auto_escape`] it is a path, and error messages read naturally
/// ("in the path of src/{{ x }}.rs").
fn path_name(path: &str) -> String {
    format!("the path of {path}")
}

/// A case conversion, registered as a filter and a function.
type Convert = fn(&str) -> String;

/// The name under which the manifest's `root_dir` is compiled.
pub(crate) const ROOT_DIR_TEMPLATE: &str = "the root_dir of template.toml";

/// The environment every template compiles into: strict about undefined
/// names (a typo in a template must fail, not render as nothing), keeping
/// files' final newlines, and with block tags on their own lines leaving no
/// blank line behind, which is what generated code needs.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_fuel(Some(FUEL_PER_FILE));
    env.set_auto_escape_callback(auto_escape);
    // Each filter is also a function (`{{ snake(name) }}`): file names on
    // disk cannot hold the `|` of a filter on Windows.
    let cases: [(&str, Convert); 6] = [
        ("snake", case::snake),
        ("kebab", case::kebab),
        ("pascal", case::pascal),
        ("camel", case::camel),
        ("screaming_snake", case::screaming_snake),
        ("singular", case::singular),
    ];
    for (name, convert) in cases {
        env.add_filter(name, move |s: &str| convert(s));
        env.add_function(name, move |s: &str| convert(s));
    }
    // Numbers come from `number` questions, so accept any value and pad its
    // text (`{{ 7 | zfill(4) }}` is `0007`).
    let zfill = |v: minijinja::Value, width: usize| case::zfill(&v.to_string(), width);
    env.add_filter("zfill", zfill);
    env.add_function("zfill", zfill);
    env
}

/// HTML-family files escape what `{{ }}` prints (an answer such as
/// `Tom & Jerry` must become `Tom &amp; Jerry` there); everything else is
/// code and gets the answer verbatim. Decided by the literal extension of
/// the stored path, ignoring template tags, so `{% if x %}index.html{% endif %}`
/// still counts as HTML.
fn auto_escape(name: &str) -> AutoEscape {
    if name.starts_with("the path of ") {
        return AutoEscape::None;
    }
    let literal = strip_tags(name);
    let ext = literal
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm" | "xhtml" | "xml" | "svg") => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

/// `s` without `{{ ... }}`, `{% ... %}` and `{# ... #}`.
fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find(['{']) {
        let close = match rest[start..].chars().nth(1) {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        match rest[start + 2..].find(close) {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Compiles the manifest's `root_dir` into `env`, checked like a path.
pub(crate) fn compile_root_dir(
    env: &mut Environment<'static>,
    root_dir: &str,
    question_ids: &BTreeSet<&str>,
) -> Result<()> {
    if let Some(tag) = cross_file_tag(root_dir) {
        return Err(Error::Manifest(format!(
            "`root_dir`: `{{% {tag} %}}` is not supported"
        )));
    }
    env.add_template_owned(ROOT_DIR_TEMPLATE, root_dir.to_owned())
        .map_err(|e| Error::Manifest(format!("`root_dir`: {e}")))?;
    check_variables(env, ROOT_DIR_TEMPLATE, "template.toml", question_ids)
}

/// Renders the root directory's name: `None` if the manifest has no
/// `root_dir` or it renders blank.
pub(crate) fn render_root_dir(
    env: &Environment<'static>,
    has_root_dir: bool,
    answers: &Answers,
) -> Result<Option<String>> {
    if !has_root_dir {
        return Ok(None);
    }
    let ctx = minijinja::Value::from_serialize(answers.as_map());
    let mut budget = Budget {
        bytes: paths::MAX_PATH_BYTES,
        fuel: FUEL_PER_FILE,
        exceeded: false,
    };
    let raw = render_one(env, ROOT_DIR_TEMPLATE, "root_dir", &ctx, &mut budget)?;
    let rendered = String::from_utf8_lossy(&raw);
    let name = rendered.trim();
    if name.is_empty() {
        return Ok(None);
    }
    match paths::normalize_rendered(name) {
        Ok(Rendered::File(n)) if n == name && !n.contains('/') => Ok(Some(n)),
        _ => Err(Error::RenderedPath {
            source_path: "root_dir".to_owned(),
            rendered: name.to_owned(),
            reason: "is not a single safe directory name",
        }),
    }
}

/// Compiles one stored file into `env`: its path always, its content when
/// it is text. Also checks that the file reads only question ids (and the
/// engine's own globals), so a misspelt variable fails at load instead of
/// in whichever render first takes that branch.
pub(crate) fn compile(
    env: &mut Environment<'static>,
    path: &str,
    bytes: Vec<u8>,
    question_ids: &BTreeSet<&str>,
) -> Result<Body> {
    paths::check_source(path).map_err(|reason| Error::SourcePath {
        path: path.to_owned(),
        reason,
    })?;
    let syntax = |e: minijinja::Error| Error::FileTemplate {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(tag) = cross_file_tag(path) {
        return Err(Error::FileTemplate {
            path: path.to_owned(),
            message: format!("`{{% {tag} %}}` is not supported in a path"),
        });
    }
    let path_template = path_name(path);
    env.add_template_owned(path_template.clone(), path.to_owned())
        .map_err(syntax)?;
    let (body, names) = match String::from_utf8(bytes) {
        Ok(text) => {
            if let Some(tag) = cross_file_tag(&text) {
                return Err(Error::FileTemplate {
                    path: path.to_owned(),
                    message: format!("`{{% {tag} %}}` is not supported: each file stands alone"),
                });
            }
            env.add_template_owned(path.to_owned(), text)
                .map_err(syntax)?;
            (Body::Text, vec![path_template, path.to_owned()])
        }
        Err(e) => (Body::Binary(e.into_bytes()), vec![path_template]),
    };
    for name in names {
        check_variables(env, &name, path, question_ids)?;
    }
    Ok(body)
}

/// The first `include`, `extends`, `import` or `from` tag in `source`.
///
/// The engine would resolve them against the template's other files, so a
/// file could pull in another that is itself generated, or a path
/// template; refusing them keeps every file self-contained.
fn cross_file_tag(source: &str) -> Option<&'static str> {
    const TAGS: [&str; 4] = ["include", "extends", "import", "from"];
    source.match_indices("{%").find_map(|(at, _)| {
        let rest = source[at + 2..].trim_start_matches(['-', '+']).trim_start();
        let word_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        TAGS.into_iter().find(|t| *t == &rest[..word_end])
    })
}

/// Fails if the compiled template `name` reads a variable that is neither
/// a question nor one of the engine's globals.
fn check_variables(
    env: &Environment<'static>,
    name: &str,
    path: &str,
    question_ids: &BTreeSet<&str>,
) -> Result<()> {
    let template = env.get_template(name).map_err(|e| Error::FileTemplate {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut used: Vec<String> = template.undeclared_variables(false).into_iter().collect();
    used.sort();
    match used
        .iter()
        .find(|v| !question_ids.contains(v.as_str()) && !globals.contains(v.as_str()))
    {
        Some(unknown) => Err(Error::FileTemplate {
            path: path.to_owned(),
            message: format!("uses `{unknown}`, which is not a question of this template"),
        }),
        None => Ok(()),
    }
}

/// What is left of the render's budgets.
struct Budget {
    bytes: usize,
    fuel: u64,
    /// Set when the byte budget, not the template, stopped a render.
    exceeded: bool,
}

/// An `io::Write` into a buffer that refuses to grow past the budget.
struct Capped<'a> {
    out: Vec<u8>,
    budget: &'a mut Budget,
}

impl io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.budget.bytes {
            self.budget.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.budget.bytes -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders the template `name` into bytes, charging the budgets.
fn render_one(
    env: &Environment<'static>,
    name: &str,
    source_path: &str,
    ctx: &minijinja::Value,
    budget: &mut Budget,
) -> Result<Vec<u8>> {
    let template = env.get_template(name).map_err(|e| Error::Render {
        path: source_path.to_owned(),
        message: e.to_string(),
    })?;
    let mut capped = Capped {
        out: Vec::new(),
        budget,
    };
    let result = template.render_captured_to(ctx, &mut capped);
    let out = std::mem::take(&mut capped.out);
    match result {
        Ok(captured) => {
            let used = captured
                .state()
                .fuel_levels()
                .map_or(0, |(consumed, _)| consumed);
            if used > budget.fuel {
                return Err(Error::Limit(format!(
                    "rendering uses more than {FUEL_PER_RENDER} template instructions in all"
                )));
            }
            budget.fuel -= used;
            Ok(out)
        }
        Err(_) if budget.exceeded => Err(Error::Limit(format!(
            "the rendered files exceed {} MiB",
            MAX_OUTPUT_BYTES >> 20
        ))),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(Error::Limit(format!(
            "{source_path} uses more than {FUEL_PER_FILE} template instructions"
        ))),
        Err(e) => Err(Error::Render {
            path: source_path.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Renders every file over `answers`: paths first (a file whose path renders
/// empty or to a directory is left out), then contents.
pub(crate) fn render_all(
    env: &Environment<'static>,
    files: &BTreeMap<String, Body>,
    answers: &Answers,
) -> Result<Vec<RenderedFile>> {
    let ctx = minijinja::Value::from_serialize(answers.as_map());
    let mut budget = Budget {
        bytes: MAX_OUTPUT_BYTES,
        fuel: FUEL_PER_RENDER,
        exceeded: false,
    };
    // Rendered path → the stored path it came from, to name both in a clash.
    let mut out: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    for (source, body) in files {
        let raw = render_one(env, &path_name(source), source, &ctx, &mut budget)?;
        let rendered = String::from_utf8_lossy(&raw);
        let path = match paths::normalize_rendered(&rendered) {
            Ok(Rendered::Skip) => continue,
            Ok(Rendered::File(path)) => path,
            Err(reason) => {
                return Err(Error::RenderedPath {
                    source_path: source.clone(),
                    rendered: rendered.into_owned(),
                    reason,
                });
            }
        };
        if let Some((first, _)) = out.get(&path) {
            return Err(Error::DuplicatePath {
                path,
                sources: [first.clone(), source.clone()],
            });
        }
        let bytes = match body {
            Body::Text => render_one(env, source, source, &ctx, &mut budget)?,
            Body::Binary(bytes) => {
                if bytes.len() > budget.bytes {
                    return Err(Error::Limit(format!(
                        "the rendered files exceed {} MiB",
                        MAX_OUTPUT_BYTES >> 20
                    )));
                }
                budget.bytes -= bytes.len();
                bytes.clone()
            }
        };
        out.insert(path, (source.clone(), bytes));
    }
    check_file_dir_clashes(&out)?;
    Ok(out
        .into_iter()
        .map(|(path, (_, bytes))| RenderedFile { path, bytes })
        .collect())
}

/// `a` as a file and `a/b` beside it cannot both be unpacked.
fn check_file_dir_clashes(out: &BTreeMap<String, (String, Vec<u8>)>) -> Result<()> {
    for path in out.keys() {
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if out.contains_key(parent) {
                return Err(Error::PathClash {
                    path: parent.to_owned(),
                });
            }
            prefix = parent;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_html_family_files() {
        assert_eq!(auto_escape("index.html"), AutoEscape::Html);
        assert_eq!(
            auto_escape("{% if a %}pages/about.HTML{% endif %}"),
            AutoEscape::Html
        );
        assert_eq!(auto_escape("{{ name }}.svg"), AutoEscape::Html);
        assert_eq!(auto_escape("src/main.rs"), AutoEscape::None);
        assert_eq!(auto_escape("{{ name }}.tsx"), AutoEscape::None);
        assert_eq!(auto_escape("the path of index.html"), AutoEscape::None);
    }

    #[test]
    fn finds_cross_file_tags() {
        assert_eq!(cross_file_tag("a {% include 'b' %}"), Some("include"));
        assert_eq!(cross_file_tag("{%- extends \"x\" %}"), Some("extends"));
        assert_eq!(cross_file_tag("{%+ from 'm' import x %}"), Some("from"));
        assert_eq!(cross_file_tag("{% if imported %}{% endif %}"), None);
        assert_eq!(cross_file_tag("{% set include = 1 %}{{ include }}"), None);
        assert_eq!(cross_file_tag("{%"), None);
    }

    #[test]
    fn strips_template_tags() {
        assert_eq!(strip_tags("{% if a %}x/{{ b }}.rs{% endif %}"), "x/.rs");
        assert_eq!(strip_tags("{a}.json"), "{a}.json");
        assert_eq!(strip_tags("a{{ unterminated"), "a");
    }
}
