//! The rules as prompt text: one line per rule, so that even a long rule set
//! costs few tokens, with the ids the checker will later cite.

use std::fmt::Write as _;

use crate::rule::{Rule, Severity};

/// A compact block for an LLM prompt: a short lead-in, then one line per
/// rule with its id, title and instruction. Warnings and review-only rules
/// are marked so the model knows which rules the checker enforces.
/// Returns an empty string for no rules, so callers can append it blindly.
pub fn prompt_section(rules: &[&Rule]) -> String {
    if rules.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "Constraints: follow every rule below. Code that breaks an (error) rule is \
         rejected, (warning) rules are reported, (reviewed) rules are checked by a reviewer.\n",
    );
    for rule in rules {
        let mut marks = vec![match rule.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }];
        if !rule.is_static() {
            marks.push("reviewed");
        }
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "- {} {} ({}): {}",
            rule.id(),
            rule.title(),
            marks.join(", "),
            rule.instruction()
        );
    }
    out
}
