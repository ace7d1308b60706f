//! Running a rule's static checks over code, and the report that comes out.
//!
//! The checks are regexes over the whole text, not parsers: they are meant
//! to catch the common, recognisable mistakes in generated code cheaply and
//! deterministically, and leave the rest to review. Regexes from the `regex`
//! crate run in linear time, so tenant-written rules cannot stall the host.

use serde::{Deserialize, Serialize};

use crate::rule::{Check, ExampleKind, Rule, Severity};

/// The longest excerpt a violation carries, in characters: enough to show
/// the offending line, short enough to keep a report (and a prompt) small.
const EXCERPT_CHARS: usize = 160;

/// The text that replaces the excerpt of a rule with `redact: true`.
const REDACTED: &str = "[redacted]";

/// The named group that marks where a `forbid` match is reported, so a
/// regex can match context (an `async fn` header) before the target.
const AT_GROUP: &str = "at";

/// One place where code breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The broken rule's id.
    pub rule_id: String,
    /// The rule's severity.
    pub severity: Severity,
    /// 1-based line: where a forbidden match starts (or its `at` group),
    /// or for a missing requirement the line of its first `when` match
    /// (1 without `when`).
    pub line: usize,
    /// That line, trimmed and shortened (or `[redacted]`).
    pub excerpt: String,
    /// The rule's title and instruction: what to do instead.
    pub message: String,
}

/// The outcome of checking one piece of code against the applicable rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every violation found, ordered by line then rule id; at most one per
    /// rule and line.
    pub violations: Vec<Violation>,
    /// Ids of applicable rules that a human or an LLM must still review.
    pub needs_review: Vec<String>,
    /// Ids of applicable rules whose static checks were run.
    pub checked: Vec<String>,
}

impl Report {
    /// Whether any violation has severity `error` (the code should be refused).
    pub fn has_errors(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.severity == Severity::Error)
    }

    /// Whether there is no violation at all (review may still be pending).
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Byte offsets of line starts, to turn match offsets into line numbers.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based line number of byte offset `at`.
    fn line_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at)
    }

    /// The text of 1-based line `line`, without its line ending.
    fn text_of(&self, line: usize) -> &'a str {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let end = self
            .starts
            .get(line)
            .map_or(self.text.len(), |&next| next.saturating_sub(1));
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

fn excerpt(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

impl Rule {
    /// Runs the rule's static checks over `code`, whatever its language and
    /// tags (see [`Rule::applies_to`] for that). Returns the violations in
    /// line order, at most one per line.
    pub fn violations(&self, code: &str) -> Vec<Violation> {
        let code = match self.ignore_after.as_ref().and_then(|r| r.find(code)) {
            Some(m) => &code[..m.start()],
            None => code,
        };
        let lines = Lines::new(code);
        let mut hit_lines: Vec<usize> = Vec::new();
        for check in &self.checks {
            match check {
                Check::Forbid { pattern, unless } => {
                    for caps in pattern.captures_iter(code) {
                        let Some(m) = caps.get(0) else { continue };
                        let at = caps.name(AT_GROUP).map_or(m.start(), |g| g.start());
                        // Every line the match spans may carry the excuse:
                        // context before the target (`fn main`) or the
                        // target's own line (`spawn_blocking(...)`).
                        let first = lines.line_of(m.start());
                        let last = lines.line_of(m.end().saturating_sub(1).max(m.start()));
                        let excused = unless.as_ref().is_some_and(|u| {
                            (first..=last).any(|line| u.is_match(lines.text_of(line)))
                        });
                        if !excused {
                            hit_lines.push(lines.line_of(at));
                        }
                    }
                }
                Check::Require { pattern, when } => {
                    let trigger = match when {
                        Some(when) => when.find(code).map(|m| lines.line_of(m.start())),
                        None => Some(1),
                    };
                    if let Some(line) = trigger
                        && !pattern.is_match(code)
                    {
                        hit_lines.push(line);
                    }
                }
            }
        }
        hit_lines.sort_unstable();
        hit_lines.dedup();
        hit_lines
            .into_iter()
            .map(|line| Violation {
                rule_id: self.id.clone(),
                severity: self.severity,
                line,
                excerpt: if self.redact {
                    REDACTED.to_string()
                } else {
                    excerpt(lines.text_of(line))
                },
                message: format!("{}: {}", self.title, self.instruction),
            })
            .collect()
    }

    /// Checks the rule's own examples against its static checks: every
    /// `bad` example must be flagged and no `good` example may be. A
    /// review-only rule has nothing to verify.
    pub fn verify_examples(&self) -> Vec<ExampleFailure> {
        if !self.is_static() {
            return Vec::new();
        }
        self.examples
            .iter()
            .filter_map(|example| {
                let found = self.violations(&example.code);
                let wrong = match example.kind {
                    ExampleKind::Bad => found.is_empty(),
                    ExampleKind::Good => !found.is_empty(),
                };
                wrong.then(|| ExampleFailure {
                    rule_id: self.id.clone(),
                    document: self.document.clone(),
                    line: example.line,
                    kind: example.kind,
                    found,
                })
            })
            .collect()
    }
}

/// A rule's example that its checks get wrong: a `bad` example nothing
/// flags, or a `good` example something flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleFailure {
    /// The rule whose example fails.
    pub rule_id: String,
    /// The rule's document.
    pub document: String,
    /// 1-based line of the example's opening fence in the document.
    pub line: usize,
    /// Which kind of example it is.
    pub kind: ExampleKind,
    /// What the checks found in it (empty for an unflagged bad example).
    pub found: Vec<Violation>,
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ExampleKind::Bad => write!(
                f,
                "{}:{}: {}'s bad example is not flagged",
                self.document, self.line, self.rule_id
            ),
            ExampleKind::Good => {
                let lines: Vec<String> = self.found.iter().map(|v| v.line.to_string()).collect();
                write!(
                    f,
                    "{}:{}: {}'s good example is flagged (example line {})",
                    self.document,
                    self.line,
                    self.rule_id,
                    lines.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_strip_endings() {
        let lines = Lines::new("a\r\nbb\n\nccc");
        assert_eq!(lines.line_of(0), 1);
        assert_eq!(lines.line_of(3), 2);
        assert_eq!(lines.line_of(6), 3);
        assert_eq!(lines.line_of(7), 4);
        assert_eq!(lines.text_of(1), "a");
        assert_eq!(lines.text_of(2), "bb");
        assert_eq!(lines.text_of(3), "");
        assert_eq!(lines.text_of(4), "ccc");
        assert_eq!(lines.text_of(9), "");
    }

    #[test]
    fn long_excerpts_are_cut_on_a_char_boundary() {
        let long = "é".repeat(EXCERPT_CHARS + 10);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("  short  "), "short");
    }
}
