//! The crate's one error type. Constraint documents are written by people
//! (and stored by tenants), so every parse error names the document and the
//! line, and says what the format expected there.

use std::path::PathBuf;

/// Everything that can go wrong loading or parsing constraint documents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory or file could not be read (missing, unreadable, not UTF-8).
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The directory or file being read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A directory held no constraint documents (`*.md` other than README.md),
    /// which is almost always a wrong path rather than an empty rule set.
    #[error("{}: no constraint documents (*.md other than README.md)", .0.display())]
    NoDocuments(PathBuf),
    /// A document does not follow the format in `constraints/README.md`.
    #[error("{document}:{line}: {problem}")]
    Parse {
        /// The document's name (its file stem when loaded from a directory).
        document: String,
        /// 1-based line of the document where the problem is.
        line: usize,
        /// What is wrong there.
        problem: Problem,
    },
}

/// What is wrong with a line of a constraint document. Kept as variants so
/// that callers (and tests) can tell problems apart without matching text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The document is empty or its header block is missing.
    #[error("the document must start with a header block (`title:` and `version:` lines)")]
    MissingHeader,
    /// A required header key is absent.
    #[error("the header lacks `{0}:`")]
    MissingHeaderKey(&'static str),
    /// A header key the format does not define (typos would otherwise be lost).
    #[error("unknown header key `{0}` (expected title, version)")]
    UnknownHeaderKey(String),
    /// `version:` is not a positive integer.
    #[error("`version:` must be a positive integer, got `{0}`")]
    BadVersion(String),
    /// A line inside a header or rule key block is not `key: value`.
    #[error("expected a `key: value` line (a blank line ends the block), got `{0}`")]
    NotKeyValue(String),
    /// A key appears twice where only one is allowed.
    #[error("`{0}:` is given twice")]
    DuplicateKey(String),
    /// A `## ` line is not `## ID Title`.
    #[error("a rule heading must be `## ID Title` with an id like SEC-001, got `{0}`")]
    BadHeading(String),
    /// Two rules share an id (within one document or across the set).
    #[error("rule id {id} is already defined in {first}")]
    DuplicateRule {
        /// The repeated id.
        id: String,
        /// Where the first definition is (`document:line`).
        first: String,
    },
    /// A rule key the format does not define.
    #[error(
        "unknown rule key `{0}` (expected applies, tags, except-tags, severity, instruction, check, ignore-after, redact)"
    )]
    UnknownRuleKey(String),
    /// A required rule key is absent.
    #[error("rule {rule} lacks `{key}:`")]
    MissingRuleKey {
        /// The rule's id.
        rule: String,
        /// The missing key.
        key: &'static str,
    },
    /// A language name the format does not know.
    #[error(
        "unknown language `{0}` (expected rust, typescript, tsx, sql, html, css, wit, toml, shell or *)"
    )]
    UnknownLanguage(String),
    /// `*` mixed with named languages, a repeated language, or an empty list.
    #[error("`applies:` must be `*` alone or a list of distinct languages, got `{0}`")]
    BadApplies(String),
    /// A tag that is not lowercase kebab-case.
    #[error("tags are lowercase kebab-case words (a-z, 0-9, -), got `{0}`")]
    BadTag(String),
    /// `severity:` is neither error nor warning.
    #[error("`severity:` must be error or warning, got `{0}`")]
    BadSeverity(String),
    /// `redact:` is neither true nor false.
    #[error("`redact:` must be true or false, got `{0}`")]
    BadRedact(String),
    /// An `ignore-after:` value that is not a single `/regex/`.
    #[error("`ignore-after:` must be a single /regex/, got `{0}`")]
    BadIgnoreAfter(String),
    /// A `check:` value that is not one of the three forms.
    #[error(
        "`check:` must be `forbid /re/ [unless /re/]`, `require /re/ [when /re/]` or `review`, got `{0}`"
    )]
    BadCheck(String),
    /// `check: review` given more than once.
    #[error("`check: review` is given twice")]
    DuplicateReview,
    /// A regex that does not compile (or is too large).
    #[error("invalid regex /{pattern}/: {reason}")]
    BadRegex {
        /// The pattern as written between the slashes.
        pattern: String,
        /// The regex compiler's explanation.
        reason: String,
    },
    /// A regex that matches the empty string would match everywhere (forbid)
    /// or always be satisfied (require), so it is surely a mistake.
    #[error("regex /{0}/ matches the empty string")]
    EmptyMatch(String),
    /// A rule with a static check lacks a `bad` or a `good` example; the
    /// examples are what keep its regexes honest.
    #[error("rule {rule} has a static check but no `{kind}` example")]
    MissingExample {
        /// The rule's id.
        rule: String,
        /// `bad` or `good`.
        kind: &'static str,
    },
    /// An example's language is not one the rule applies to.
    #[error("example language `{language}` is not in rule {rule}'s `applies:`")]
    ExampleLanguage {
        /// The rule's id.
        rule: String,
        /// The language named after `bad`/`good`.
        language: String,
    },
    /// A code fence that is never closed.
    #[error("this code fence is never closed")]
    UnclosedFence,
    /// A document without a single rule (often a malformed heading).
    #[error("the document defines no rules")]
    NoRules,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
