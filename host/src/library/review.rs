//! The LLM review of constraint rules that no static check can decide
//! (`review: true` in a rule): the code and those rules go to the gateway,
//! billed to the tenant, and the model answers which of them the code
//! breaks, as JSON. Only rule ids that were asked about are kept, so a
//! model cannot add rules of its own; an answer that is not the JSON asked
//! for leaves the rules pending, and says so.

use serde::{Deserialize, Serialize};
use weft_constraints::{Report, Severity, prompt_section};
use weft_llm_wire as wire;

use super::{Library, Result};
use crate::llm::{Caller, CompletionRequest, Complexity, Gateway};

const SYSTEM: &str = "You review code against rules. For each rule listed, decide whether the code \
     breaks it. Answer with one JSON object and nothing else: {\"violations\": [{\"rule_id\": \
     \"...\", \"line\": 1, \"reason\": \"...\"}]}, one entry per broken rule (an empty list when \
     the code follows them all), using only the rule ids listed.";

/// One rule the reviewer found broken.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewViolation {
    pub rule_id: String,
    #[schema(value_type = String)]
    pub severity: Severity,
    /// 1-based, as the model gave it (1 when it gave none or one past the end).
    pub line: usize,
    pub excerpt: String,
    /// The model's reason.
    pub reason: String,
}

/// What the review did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Review {
    /// `ok`, or `unreadable` when the answer was not the JSON asked for
    /// (the rules stay in `needs_review`; the call is still charged).
    pub status: &'static str,
    pub model: String,
    pub cost_micro_credits: i64,
    /// The rules the model was asked about.
    pub reviewed: Vec<String>,
    pub violations: Vec<ReviewViolation>,
}

#[derive(Deserialize)]
struct Answer {
    violations: Vec<AnswerViolation>,
}

#[derive(Deserialize)]
struct AnswerViolation {
    rule_id: String,
    #[serde(default)]
    line: Option<usize>,
    #[serde(default)]
    reason: String,
}

/// The JSON object in a model's answer (it may wrap it in a fence or words).
fn answer_of(text: &str) -> Option<Answer> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

impl Library {
    /// Reviews `code` against the rules of `report.needs_review` with the
    /// gateway, moving those the model answered for out of
    /// `needs_review`. `None` when no rule needs a review.
    pub async fn review(
        &self,
        gateway: &Gateway,
        caller: &Caller,
        code: &str,
        language: &str,
        model: Option<String>,
        report: &mut Report,
    ) -> Result<Option<Review>> {
        let rules: Vec<_> = report
            .needs_review
            .iter()
            .filter_map(|id| self.constraints().rule(id))
            .collect();
        if rules.is_empty() {
            return Ok(None);
        }
        let request = CompletionRequest {
            model,
            task: "code".into(),
            complexity: Complexity::Medium,
            role: Some("reviewer".into()),
            session: None,
            system: Some(format!("{SYSTEM}\n\n{}", prompt_section(&rules))),
            messages: vec![wire::Message::text(
                wire::Role::User,
                format!("```{language}\n{}\n```", code.trim_end()),
            )],
            max_tokens: Some(800),
            temperature: Some(0.0),
        };
        let answer = gateway.complete(caller, &request).await?;
        let reviewed: Vec<String> = rules.iter().map(|r| r.id().to_owned()).collect();
        let mut review = Review {
            status: "unreadable",
            model: answer.model.clone(),
            cost_micro_credits: answer.cost.0,
            reviewed: reviewed.clone(),
            violations: Vec::new(),
        };
        let Some(parsed) = answer_of(&answer.text) else {
            tracing::warn!(model = %answer.model, "constraint review: the answer is not the JSON asked for");
            return Ok(Some(review));
        };
        let lines: Vec<&str> = code.lines().collect();
        for v in parsed.violations {
            let Some(rule) = rules.iter().find(|r| r.id() == v.rule_id) else {
                continue;
            };
            let line = v
                .line
                .filter(|l| (1..=lines.len()).contains(l))
                .unwrap_or(1);
            let excerpt: String = lines
                .get(line - 1)
                .map(|l| l.trim().chars().take(160).collect())
                .unwrap_or_default();
            if review
                .violations
                .iter()
                .any(|r| r.rule_id == v.rule_id && r.line == line)
            {
                continue;
            }
            review.violations.push(ReviewViolation {
                rule_id: v.rule_id,
                severity: rule.severity(),
                line,
                excerpt,
                reason: v.reason.chars().take(500).collect(),
            });
        }
        review.status = "ok";
        report.needs_review.retain(|id| !reviewed.contains(id));
        Ok(Some(review))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_json_object_in_it() {
        let a = answer_of("Sure:\n```json\n{\"violations\": [{\"rule_id\": \"A11Y-1\", \"line\": 3, \"reason\": \"no label\"}]}\n```")
            .expect("parsed");
        assert_eq!(a.violations.len(), 1);
        assert_eq!(a.violations[0].rule_id, "A11Y-1");
        assert_eq!(a.violations[0].line, Some(3));
        assert!(answer_of("{\"violations\": []}").is_some_and(|a| a.violations.is_empty()));
        assert!(answer_of("I think the code is fine.").is_none());
        assert!(answer_of("{\"verdict\": \"fine\"}").is_none());
    }
}
