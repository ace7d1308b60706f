//! `template.toml`: what a template is and the questions it asks.
//!
//! Parsed strictly (an unknown field is an error) because a typo such as
//! `requried = true` would otherwise silently change what a template
//! accepts, and tenants write these files too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answers::check_value;
use crate::{Error, Result};

/// At most this many questions: a template that needs more is a project
/// generator, not a template.
pub const MAX_QUESTIONS: usize = 5;
/// At most this many choices per `choice` question.
pub const MAX_CHOICES: usize = 20;
/// The longest text answer when a question sets no `max_length`, and the
/// highest `max_length` a question may set: answers are pasted into files,
/// possibly many times, so they stay small.
pub const MAX_TEXT_CHARS: u32 = 10_000;
/// The text cap used when a question does not set `max_length`.
pub const DEFAULT_MAX_TEXT_CHARS: u32 = 1_000;

/// Names the engine defines itself, or that the template language reserves;
/// a question with one of these ids could never be read.
const RESERVED_IDS: &[&str] = &[
    "and",
    "as",
    "block",
    "cycler",
    "debug",
    "dict",
    "else",
    "false",
    "for",
    "if",
    "in",
    "is",
    "joiner",
    "loop",
    "namespace",
    "none",
    "not",
    "or",
    "range",
    "recursive",
    "self",
    "super",
    "true",
    "varargs",
    "kwargs",
];

/// The parsed `template.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name shown in lists.
    pub title: String,
    /// What the template produces and when to use it.
    #[serde(default)]
    pub description: String,
    /// The main language of the generated files (`rust`, `tsx`, `sql`, ...).
    pub language: String,
    /// Lowercase, hyphenated search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The name of the generated project's top directory (the zip's root),
    /// a template over the answers such as `"{{ service_name }}"`; without
    /// it the caller picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
    /// The questions, in the order they are asked.
    #[serde(default)]
    pub questions: Vec<Question>,
}

/// One question whose answer the files read as a variable named `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// `snake_case`; the variable name in the files.
    pub id: String,
    /// What to ask, e.g. "Crate name".
    pub prompt: String,
    /// A longer explanation a form can show under the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// What kind of answer it takes.
    pub kind: QuestionKind,
    /// The allowed answers of a `choice` question, in display order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Used when the answer is missing. Questions that are not required must
    /// have one unless they are `text` (then `""`) or `bool` (then `false`),
    /// so every variable has a value when the files render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A missing answer with no default is an error; so is an empty text.
    #[serde(default)]
    pub required: bool,
    /// For `text`: the shape a name must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<NameShape>,
    /// For `text`: the fewest characters of a non-empty answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// For `text`: the most characters (default 1000, at most 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// For `text`: whether line breaks and tabs are allowed. Answers are
    /// single-line by default, because most land in a line of code (a doc
    /// comment, a TOML string) that a line break would break.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiline: bool,
    /// For `number`: the smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For `number`: the largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// For `number`: only whole numbers (ports, counts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integer: bool,
}

/// The kinds of answer a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// A string.
    Text,
    /// One of the question's `choices`.
    Choice,
    /// `true` or `false`.
    Bool,
    /// A JSON number.
    Number,
}

impl QuestionKind {
    /// How error messages name the expected JSON type.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Self::Text | Self::Choice => "a string",
            Self::Bool => "true or false",
            Self::Number => "a number",
        }
    }
}

/// Shapes of names a `text` answer can be required to have, checked without
/// regular expressions so that a template cannot make validation slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameShape {
    /// A letter or `_`, then letters, digits and `_` (ASCII): a variable
    /// name in most languages.
    Identifier,
    /// `my-project`: lowercase ASCII words of letters and digits joined by
    /// single hyphens, starting with a letter (crate, package and plugin
    /// names, URL slugs).
    Kebab,
    /// `my_project`: like kebab with underscores (Rust modules, SQL tables).
    Snake,
    /// `MyComponent`: an uppercase letter, then ASCII letters and digits.
    Pascal,
    /// `myFunction`: a lowercase letter, then ASCII letters and digits.
    Camel,
}

impl NameShape {
    /// Whether `s` has this shape.
    pub fn matches(self, s: &str) -> bool {
        let b = s.as_bytes();
        let Some(&first) = b.first() else {
            return false;
        };
        match self {
            Self::Identifier => {
                (first.is_ascii_alphabetic() || first == b'_')
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
            }
            Self::Kebab => separated(b, b'-'),
            Self::Snake => separated(b, b'_'),
            Self::Pascal => first.is_ascii_uppercase() && b.iter().all(u8::is_ascii_alphanumeric),
            Self::Camel => first.is_ascii_lowercase() && b.iter().all(u8::is_ascii_alphanumeric),
        }
    }

    /// What the shape is, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Identifier => {
                "an identifier: a letter or `_`, then letters, digits and `_` (e.g. my_name)"
            }
            Self::Kebab => {
                "kebab-case: lowercase letters and digits in words joined by single hyphens, starting with a letter (e.g. my-project)"
            }
            Self::Snake => {
                "snake_case: lowercase letters and digits in words joined by single underscores, starting with a letter (e.g. my_project)"
            }
            Self::Pascal => {
                "PascalCase: an uppercase letter, then letters and digits (e.g. MyComponent)"
            }
            Self::Camel => {
                "camelCase: a lowercase letter, then letters and digits (e.g. myFunction)"
            }
        }
    }
}

/// Lowercase ASCII words of letters and digits joined by single `sep`,
/// starting with a letter.
fn separated(b: &[u8], sep: u8) -> bool {
    let starts_with_letter = b.first().is_some_and(u8::is_ascii_lowercase);
    let allowed = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == sep);
    let no_empty_word = !b.ends_with(&[sep]) && !b.windows(2).any(|w| w == [sep, sep]);
    starts_with_letter && allowed && no_empty_word
}

impl Manifest {
    /// Parses and checks `template.toml`.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Self =
            toml::from_str(text).map_err(|e| Error::ManifestSyntax(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Manifest(msg));
        if self.title.trim().is_empty() || self.title.chars().count() > 100 {
            return bad("`title` must be 1 to 100 characters".into());
        }
        if self.description.chars().count() > 2000 {
            return bad("`description` must be at most 2000 characters".into());
        }
        if !NameShape::Kebab.matches(&self.language) || self.language.len() > 32 {
            return bad(format!(
                "`language` must be a short lowercase name such as `rust` or `tsx`, not {:?}",
                self.language
            ));
        }
        if self.tags.len() > 16 {
            return bad("at most 16 `tags`".into());
        }
        if let Some(tag) = self
            .tags
            .iter()
            .find(|t| !NameShape::Kebab.matches(t) || t.len() > 32)
        {
            return bad(format!(
                "tag {tag:?} must be lowercase and hyphenated, at most 32 characters"
            ));
        }
        if self.root_dir.as_ref().is_some_and(|r| r.len() > 256) {
            return bad("`root_dir` must be at most 256 bytes".into());
        }
        if self.questions.len() > MAX_QUESTIONS {
            return bad(format!(
                "{} questions; a template asks at most {MAX_QUESTIONS}",
                self.questions.len()
            ));
        }
        for (i, q) in self.questions.iter().enumerate() {
            if self.questions[..i].iter().any(|p| p.id == q.id) {
                return Err(question(
                    &q.id,
                    "is asked twice (ids must be unique)".into(),
                ));
            }
            q.check()?;
        }
        Ok(())
    }
}

fn question(id: &str, reason: String) -> Error {
    Error::Question {
        id: id.to_owned(),
        reason,
    }
}

impl Question {
    fn check(&self) -> Result<()> {
        let fail = |reason: String| Err(question(&self.id, reason));
        if !NameShape::Snake.matches(&self.id) || self.id.len() > 64 {
            return fail("the id must be snake_case, at most 64 characters".into());
        }
        if RESERVED_IDS.contains(&self.id.as_str()) {
            return fail("the id is a reserved word of the template language".into());
        }
        if self.prompt.trim().is_empty() || self.prompt.chars().count() > 200 {
            return fail("`prompt` must be 1 to 200 characters".into());
        }
        if self.help.as_ref().is_some_and(|h| h.chars().count() > 1000) {
            return fail("`help` must be at most 1000 characters".into());
        }
        self.check_kind_fields()?;
        match &self.default {
            Some(default) => {
                if let Err(e) = check_value(self, default) {
                    return fail(format!("the default {default} is not valid: {}", e.message));
                }
            }
            None if !self.required
                && matches!(self.kind, QuestionKind::Choice | QuestionKind::Number) =>
            {
                return fail(
                    "needs a `default` or `required = true`, so the files always have a value"
                        .into(),
                );
            }
            None => {}
        }
        Ok(())
    }

    /// Fields that only make sense for some kinds are refused on the others,
    /// so a misplaced `pattern` is noticed instead of ignored.
    fn check_kind_fields(&self) -> Result<()> {
        let fail = |reason: String| Err(question(&self.id, reason));
        let text = self.kind == QuestionKind::Text;
        let number = self.kind == QuestionKind::Number;
        if !text
            && (self.pattern.is_some() || self.min_length.is_some() || self.max_length.is_some())
        {
            return fail("`pattern`, `min_length` and `max_length` are for text questions".into());
        }
        if !number && (self.min.is_some() || self.max.is_some() || self.integer) {
            return fail("`min`, `max` and `integer` are for number questions".into());
        }
        if self.kind == QuestionKind::Choice {
            if !(2..=MAX_CHOICES).contains(&self.choices.len()) {
                return fail(format!(
                    "a choice question has 2 to {MAX_CHOICES} `choices`"
                ));
            }
            for (i, c) in self.choices.iter().enumerate() {
                if c.is_empty() || c.chars().count() > 100 {
                    return fail("every choice must be 1 to 100 characters".into());
                }
                if self.choices[..i].contains(c) {
                    return fail(format!("the choice {c:?} is listed twice"));
                }
            }
        } else if !self.choices.is_empty() {
            return fail("`choices` are for choice questions".into());
        }
        if let Some(max) = self.max_length
            && !(1..=MAX_TEXT_CHARS).contains(&max)
        {
            return fail(format!("`max_length` must be 1 to {MAX_TEXT_CHARS}"));
        }
        if let Some(min) = self.min_length
            && min > self.max_chars()
        {
            return fail("`min_length` is above the maximum length".into());
        }
        if self.min.is_some_and(|v| !v.is_finite()) || self.max.is_some_and(|v| !v.is_finite()) {
            return fail("`min` and `max` must be finite numbers".into());
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return fail("`min` is above `max`".into());
        }
        Ok(())
    }

    /// The longest text answer accepted.
    pub(crate) fn max_chars(&self) -> u32 {
        self.max_length.unwrap_or(DEFAULT_MAX_TEXT_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "title = \"T\"\nlanguage = \"rust\"\n";

    fn parse(questions: &str) -> Result<Manifest> {
        Manifest::parse(&format!("{HEAD}{questions}"))
    }

    fn reason(r: Result<Manifest>) -> String {
        match r {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn name_shapes() {
        use NameShape::*;
        let cases: &[(NameShape, &str, bool)] = &[
            (Kebab, "my-plugin2", true),
            (Kebab, "my--plugin", false),
            (Kebab, "-x", false),
            (Kebab, "x-", false),
            (Kebab, "2x", false),
            (Kebab, "My-plugin", false),
            (Snake, "my_table", true),
            (Snake, "my__table", false),
            (Snake, "my-table", false),
            (Identifier, "_private1", true),
            (Identifier, "1abc", false),
            (Identifier, "a-b", false),
            (Pascal, "MyComponent2", true),
            (Pascal, "myComponent", false),
            (Camel, "myFunction", true),
            (Camel, "MyFunction", false),
            (Camel, "", false),
        ];
        for &(shape, s, ok) in cases {
            assert_eq!(shape.matches(s), ok, "{shape:?} {s:?}");
        }
    }

    #[test]
    fn accepts_every_kind() {
        let m = parse(
            r#"
[[questions]]
id = "name"
prompt = "Name"
kind = "text"
pattern = "kebab"
default = "my-app"
[[questions]]
id = "db"
prompt = "Database"
kind = "choice"
choices = ["sqlite", "postgres"]
default = "sqlite"
[[questions]]
id = "with_tests"
prompt = "Tests?"
kind = "bool"
[[questions]]
id = "port"
prompt = "Port"
kind = "number"
integer = true
min = 1
max = 65535
default = 8080
"#,
        )
        .map_err(|e| e.to_string());
        assert_eq!(m.map(|m| m.questions.len()), Ok(4));
    }

    #[test]
    fn refuses_bad_questions() {
        let q = |body: &str| reason(parse(&format!("[[questions]]\n{body}")));
        assert!(q("id = \"Name\"\nprompt = \"p\"\nkind = \"text\"").contains("snake_case"));
        assert!(q("id = \"loop\"\nprompt = \"p\"\nkind = \"text\"").contains("reserved"));
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"choice\"\nchoices = [\"x\", \"y\"]\ndefault = \"z\"")
                .contains("not one of")
        );
        assert!(q("id = \"a\"\nprompt = \"p\"\nkind = \"number\"").contains("needs a `default`"));
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"bool\"\ndefault = \"yes\"")
                .contains("true or false")
        );
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"text\"\npattern = \"kebab\"\ndefault = \"Not Kebab\"")
                .contains("kebab-case")
        );
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"bool\"\npattern = \"kebab\"")
                .contains("for text")
        );
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"text\"\nrequried = true")
                .contains("unknown field")
        );
        assert!(
            q("id = \"a\"\nprompt = \"p\"\nkind = \"choice\"\nchoices = [\"x\", \"x\"]\nrequired = true")
                .contains("twice")
        );
    }

    #[test]
    fn refuses_six_questions_and_duplicates() {
        let one =
            |id: &str| format!("[[questions]]\nid = \"{id}\"\nprompt = \"p\"\nkind = \"bool\"\n");
        let six: String = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|i| one(i))
            .collect();
        assert!(reason(parse(&six)).contains("at most 5"));
        assert!(reason(parse(&format!("{}{}", one("a"), one("a")))).contains("twice"));
    }

    #[test]
    fn refuses_bad_metadata() {
        assert!(reason(Manifest::parse("title = \"\"\nlanguage = \"rust\"")).contains("title"));
        assert!(
            reason(Manifest::parse("title = \"T\"\nlanguage = \"Rust!\"")).contains("language")
        );
        assert!(
            reason(Manifest::parse(
                "title = \"T\"\nlanguage = \"rust\"\ntags = [\"A B\"]"
            ))
            .contains("tag")
        );
        assert!(reason(Manifest::parse("title = [")).contains("template.toml"));
    }
}
