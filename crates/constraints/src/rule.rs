//! One rule as parsed from a document: what it applies to, how it is
//! checked, and the examples that prove the check right.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The languages a rule may name in `applies:`: the languages of the code
/// library's items, so that every item can be checked by the same names.
pub const LANGUAGES: &[&str] = &[
    "rust",
    "typescript",
    "tsx",
    "sql",
    "html",
    "css",
    "wit",
    "toml",
    "shell",
];

/// How bad a violation is: an `error` should reject the code, a `warning`
/// should be shown to the author (or the model) but may be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Code that breaks the rule must not be accepted.
    Error,
    /// Code that breaks the rule is suspect; accept with care.
    Warning,
}

impl Severity {
    /// The word used in documents and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The languages a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    /// `applies: *` — every language, including ones not in [`LANGUAGES`].
    All,
    /// A list of names from [`LANGUAGES`].
    Languages(Vec<String>),
}

impl Applies {
    /// Whether code in `language` (already lowercased) is covered.
    pub fn covers(&self, language: &str) -> bool {
        match self {
            Applies::All => true,
            Applies::Languages(list) => list.iter().any(|l| l == language),
        }
    }
}

/// One static check of a rule (a `check:` line other than `review`).
#[derive(Debug, Clone)]
pub enum Check {
    /// `forbid /pattern/ [unless /line/]`: every match is a violation, except
    /// a match whose line (the line where the match starts) matches `unless`.
    Forbid {
        /// What must not appear.
        pattern: Regex,
        /// Lines on which a match is excused.
        unless: Option<Regex>,
    },
    /// `require /pattern/ [when /trigger/]`: a violation if `pattern` matches
    /// nowhere — but only when `trigger` matches somewhere, if given.
    Require {
        /// What must appear.
        pattern: Regex,
        /// What makes the requirement apply (e.g. an `<html` tag for `lang=`).
        when: Option<Regex>,
    },
}

/// Whether an example shows code that breaks the rule or code that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExampleKind {
    /// A ```` ```bad ```` block: every static check together must flag it.
    Bad,
    /// A ```` ```good ```` block: no static check may flag it.
    Good,
}

impl ExampleKind {
    /// The fence word used in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            ExampleKind::Bad => "bad",
            ExampleKind::Good => "good",
        }
    }
}

/// A fenced example in a rule's prose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Bad or good.
    pub kind: ExampleKind,
    /// The language after the fence word (```` ```bad tsx ````), if given.
    pub language: Option<String>,
    /// The code between the fences, lines joined with `\n`.
    pub code: String,
    /// 1-based line of the opening fence in the document.
    pub line: usize,
}

/// One rule. Built only by the parser, so its invariants hold: a rule with a
/// static check has at least one bad and one good example, its regexes
/// compile and none matches the empty string.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) document: String,
    pub(crate) line: usize,
    pub(crate) applies: Applies,
    pub(crate) tags: Vec<String>,
    pub(crate) except_tags: Vec<String>,
    pub(crate) severity: Severity,
    pub(crate) instruction: String,
    pub(crate) checks: Vec<Check>,
    pub(crate) review: bool,
    pub(crate) redact: bool,
    pub(crate) ignore_after: Option<Regex>,
    pub(crate) prose: String,
    pub(crate) examples: Vec<Example>,
}

impl Rule {
    /// The rule's id, e.g. `SEC-002`; unique within a [`crate::ConstraintSet`].
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The heading's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The name of the document that defines the rule.
    pub fn document(&self) -> &str {
        &self.document
    }

    /// 1-based line of the rule's heading in its document.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The languages the rule applies to.
    pub fn applies(&self) -> &Applies {
        &self.applies
    }

    /// The tags that scope the rule; empty means it applies whatever the tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Tags that take the rule out of play (`except-tags:`), for contexts
    /// with their own conventions (px font sizes in HTML email).
    pub fn except_tags(&self) -> &[String] {
        &self.except_tags
    }

    /// Where the rule stops looking (`ignore-after:`), e.g. at a Rust
    /// `#[cfg(test)]` module, where test code may do what product code may not.
    pub fn ignore_after(&self) -> Option<&Regex> {
        self.ignore_after.as_ref()
    }

    /// How bad a violation is.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The one-line imperative instruction, as given to the model.
    pub fn instruction(&self) -> &str {
        &self.instruction
    }

    /// The static checks (empty for a review-only rule).
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Whether the rule has at least one static check.
    pub fn is_static(&self) -> bool {
        !self.checks.is_empty()
    }

    /// Whether the rule (also) needs a human or LLM review (`check: review`).
    pub fn needs_review(&self) -> bool {
        self.review
    }

    /// Whether violation excerpts are withheld, for rules whose matches are
    /// themselves sensitive (a secret in source must not be copied into a
    /// report that ends up in logs).
    pub fn redacts(&self) -> bool {
        self.redact
    }

    /// The rationale and the fix, as written (Markdown, examples included).
    pub fn prose(&self) -> &str {
        &self.prose
    }

    /// The rule's fenced bad/good examples, in document order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Whether the rule applies to code in `language` carrying `tags`:
    /// the language must be covered, a rule with `tags:` needs at least one
    /// of them among `tags`, and none of its `except-tags:` may be there.
    /// All comparisons ignore ASCII case.
    pub fn applies_to(&self, language: &str, tags: &[String]) -> bool {
        let has = |wanted: &[String]| {
            wanted
                .iter()
                .any(|t| tags.iter().any(|g| g.trim().eq_ignore_ascii_case(t)))
        };
        let language = language.trim().to_ascii_lowercase();
        self.applies.covers(&language)
            && (self.tags.is_empty() || has(&self.tags))
            && !has(&self.except_tags)
    }
}
