//! The written constraints that code generated for Weft must follow, and
//! their checker.
//!
//! Constraints are Markdown documents in a strict format (described in
//! `constraints/README.md`): each rule has an id, the languages and tags it
//! applies to, a severity, a one-line instruction for the model, and either
//! regex checks (`forbid`/`require`) or `review`. Rules with regex checks
//! carry `bad` and `good` examples, and [`ConstraintSet::verify_examples`]
//! proves the regexes against them, so a document tests itself.
//!
//! The host reads the documents from `constraints/` at start and may store
//! tenants' own versions in its database, which is why everything parses
//! from text ([`ConstraintSet::parse`], [`Document::parse`]) and each
//! document carries its declared version and a content hash.
//!
//! ```
//! use weft_constraints::ConstraintSet;
//!
//! let text = "title: Example\nversion: 1\n\n## EX-001 No eval\n\
//!             applies: typescript\nseverity: error\n\
//!             instruction: Never call eval.\ncheck: forbid /\\beval\\(/\n\n\
//!             ```bad\neval(input);\n```\n\n```good\nJSON.parse(input);\n```\n";
//! let set = ConstraintSet::parse("example", text)?;
//! let report = set.check("const x = eval(code);", "typescript", &[]);
//! assert_eq!(report.violations[0].rule_id, "EX-001");
//! assert_eq!(report.violations[0].line, 1);
//! # Ok::<(), weft_constraints::Error>(())
//! ```

mod check;
mod error;
mod parse;
mod prompt;
mod rule;

use std::path::Path;

pub use check::{ExampleFailure, Report, Violation};
pub use error::{Error, Problem, Result};
pub use parse::Document;
pub use prompt::prompt_section;
pub use rule::{Applies, Check, Example, ExampleKind, LANGUAGES, Rule, Severity};

/// A set of constraint documents whose rule ids are unique across the set.
#[derive(Debug, Clone, Default)]
pub struct ConstraintSet {
    documents: Vec<Document>,
}

impl ConstraintSet {
    /// Loads every `*.md` file in `dir` except `README.md`, in file-name
    /// order; each document is named by its file stem (`security`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let is_md = path.extension().is_some_and(|e| e == "md");
            let is_readme = path
                .file_stem()
                .is_some_and(|s| s.eq_ignore_ascii_case("readme"));
            if is_md && !is_readme && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(Error::NoDocuments(dir.to_path_buf()));
        }
        paths.sort();
        let mut documents = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            documents.push(Document::parse(&name, &text)?);
        }
        Self::from_documents(documents)
    }

    /// A set of one document parsed from `text` (e.g. a stored version).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        Self::from_documents(vec![Document::parse(name, text)?])
    }

    /// A set of several documents given as `(name, text)`, e.g. all the
    /// current versions a tenant has stored.
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let documents = texts
            .into_iter()
            .map(|(name, text)| Document::parse(name, text))
            .collect::<Result<Vec<_>>>()?;
        Self::from_documents(documents)
    }

    /// Combines parsed documents, refusing a rule id defined twice (the
    /// error points at the second definition).
    pub fn from_documents(documents: Vec<Document>) -> Result<Self> {
        let mut seen: Vec<&Rule> = Vec::new();
        for rule in documents.iter().flat_map(|d| d.rules()) {
            if let Some(first) = seen.iter().find(|r| r.id() == rule.id()) {
                return Err(Error::Parse {
                    document: rule.document().to_string(),
                    line: rule.line(),
                    problem: Problem::DuplicateRule {
                        id: rule.id().to_string(),
                        first: format!("{}:{}", first.document(), first.line()),
                    },
                });
            }
            seen.push(rule);
        }
        Ok(ConstraintSet { documents })
    }

    /// The documents, in load (or given) order.
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Every rule of every document, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.documents.iter().flat_map(|d| d.rules())
    }

    /// The rule with id `id`, if any.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules().find(|r| r.id() == id)
    }

    /// The rules that apply to code in `language` carrying `tags` (see
    /// [`Rule::applies_to`]); this is what goes into the prompt.
    pub fn applicable(&self, language: &str, tags: &[String]) -> Vec<&Rule> {
        self.rules()
            .filter(|r| r.applies_to(language, tags))
            .collect()
    }

    /// Checks `code` against the applicable rules: static checks run now,
    /// review rules are listed in [`Report::needs_review`].
    pub fn check(&self, code: &str, language: &str, tags: &[String]) -> Report {
        let mut report = Report::default();
        for rule in self.applicable(language, tags) {
            if rule.is_static() {
                report.checked.push(rule.id().to_string());
                report.violations.extend(rule.violations(code));
            }
            if rule.needs_review() {
                report.needs_review.push(rule.id().to_string());
            }
        }
        report
            .violations
            .sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.rule_id.cmp(&b.rule_id)));
        report
    }

    /// Runs every rule's checks over its own examples; an empty result means
    /// every `bad` example is flagged and no `good` one is. Call it before
    /// accepting an edited document, as the tests do for `constraints/`.
    pub fn verify_examples(&self) -> Vec<ExampleFailure> {
        self.rules().flat_map(Rule::verify_examples).collect()
    }
}
