//! Search-first generation: a request is answered from the library when an
//! item matches it well enough (its placeholders filled, no model called);
//! otherwise the LLM gateway writes the code with the best items and the
//! constraints that apply in its prompt, and the result can be saved back
//! as a new item. Every request is recorded as a hit or a miss: the
//! library hit rate.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_llm_wire as wire;

use super::{Error, Hit, ItemInput, Library, Result, SearchParams};
use crate::ids::TenantId;
use crate::llm::{Caller, CompletionRequest, Gateway};

/// Characters of an item's code put in the prompt, each.
const CONTEXT_CODE_CHARS: usize = 3_000;
/// Items put in the prompt of a miss.
const CONTEXT_ITEMS: usize = 3;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// What the code should do, in words.
    pub request: String,
    pub language: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Values for a served item's placeholders.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// On a miss, save the generated code as a new item of the tenant.
    #[serde(default)]
    pub save: bool,
    /// An explicit model (catalog id) for a miss.
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemRef {
    pub id: String,
    pub version: i64,
    pub title: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Generated {
    /// `library` (a hit) or `llm` (a miss).
    pub served_by: &'static str,
    pub code: String,
    /// The best match's confidence, against the hit threshold.
    pub confidence: f32,
    pub threshold: f32,
    /// The item served (a hit) or the items given to the model (a miss).
    pub items: Vec<ItemRef>,
    /// Placeholders of the served item left as `{{name}}`: no value, no default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfilled: Vec<String>,
    /// The model's answer, for a miss.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub llm: Option<Value>,
    /// The new item, when a miss was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_item: Option<String>,
    /// For a miss not saved: the body to `POST /v1/library/items` to keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_offer: Option<ItemInput>,
    /// For a miss: the generated code's static constraint check (the
    /// rules it breaks, and those left to a review).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub check: Option<weft_constraints::Report>,
}

fn item_ref(h: &Hit) -> ItemRef {
    ItemRef {
        id: h.item.id.clone(),
        version: h.item.version,
        title: h.item.input.title.clone(),
        confidence: h.confidence,
    }
}

/// The code of a model's answer: its first fenced block, or all of it.
pub fn code_of(answer: &str) -> String {
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.trim_start().starts_with("```"))
                .collect();
            return format!("{}\n", body.join("\n"));
        }
    }
    answer.trim().to_owned() + "\n"
}

/// The system prompt of a miss: the constraints, then the library items
/// closest to the request.
pub fn prompt(constraints: &str, context: &[&Hit]) -> String {
    let mut p = String::from(
        "You write production code for the Weft platform. Answer with one fenced code block \
         and nothing else. Reuse the library items below where they fit.\n",
    );
    if !constraints.is_empty() {
        p.push_str("\nConstraints the code must follow:\n");
        p.push_str(constraints);
        p.push('\n');
    }
    for h in context {
        let i = &h.item.input;
        let code: String = i.code.chars().take(CONTEXT_CODE_CHARS).collect();
        p.push_str(&format!(
            "\nLibrary item {} \"{}\" ({}): {}\n```{}\n{}\n```\n",
            h.item.id,
            i.title,
            i.language,
            i.description,
            i.language,
            code.trim_end()
        ));
    }
    p
}

impl Library {
    /// Answers `req` for `caller`: from the library, or from the model.
    pub async fn generate(
        &self,
        gateway: &Gateway,
        caller: &Caller,
        req: GenerateRequest,
    ) -> Result<Generated> {
        let text = req.request.trim();
        if text.is_empty() || text.chars().count() > 4_000 {
            return Err(Error::Invalid("request: 1-4,000 characters".into()));
        }
        let tenant: &TenantId = &caller.tenant;
        let params = SearchParams {
            q: text.to_owned(),
            language: req.language.clone(),
            kind: req.kind.clone(),
            tags: req.tags.clone(),
            limit: Some(5),
            ..SearchParams::default()
        };
        let found = self.search(Some(tenant), &params).await?.hits;
        let threshold = self.config.hit_threshold;
        let confidence = found.first().map_or(0.0, |h| h.confidence);
        if let Some(top) = found.first().filter(|h| h.confidence >= threshold) {
            let (code, unfilled) = top.item.input.fill(&req.values);
            self.record_use(tenant, &top.item.id).await?;
            super::store::record_request(
                &self.db,
                tenant,
                text,
                "library",
                Some(&top.item.id),
                f64::from(confidence),
            )
            .await?;
            return Ok(Generated {
                served_by: "library",
                code,
                confidence,
                threshold,
                items: vec![item_ref(top)],
                unfilled,
                llm: None,
                saved_item: None,
                save_offer: None,
                check: None,
            });
        }

        let context: Vec<&Hit> = found.iter().take(CONTEXT_ITEMS).collect();
        let language = req
            .language
            .clone()
            .or_else(|| context.first().map(|h| h.item.input.language.clone()));
        let constraints = self.constraints_prompt(language.as_deref(), &req.tags);
        let completion = CompletionRequest {
            model: req.model.clone(),
            task: "code".into(),
            complexity: crate::llm::Complexity::Medium,
            role: Some("coder".into()),
            session: None,
            system: Some(prompt(&constraints, &context)),
            messages: vec![wire::Message::text(wire::Role::User, text)],
            max_tokens: req.max_tokens,
            temperature: Some(0.2),
        };
        let answer = gateway.complete(caller, &completion).await?;
        let code = code_of(&answer.text);
        super::store::record_request(&self.db, tenant, text, "llm", None, f64::from(confidence))
            .await?;
        let offer = ItemInput {
            title: text.chars().take(120).collect(),
            description: format!("Generated for: {text}"),
            language: language.unwrap_or_else(|| "rust".into()),
            kind: req.kind.clone().unwrap_or_else(|| "snippet".into()),
            tags: req.tags.clone(),
            license: "Apache-2.0".into(),
            dependencies: Vec::new(),
            placeholders: Vec::new(),
            code: code.clone(),
        };
        let check = self
            .constraints()
            .check(&code, &offer.language, &offer.tags);
        let saved_item = if req.save {
            let item = self
                .create(super::Owner::Tenant(tenant), offer.clone(), &caller.user)
                .await?;
            Some(item.id)
        } else {
            None
        };
        Ok(Generated {
            served_by: "llm",
            code,
            confidence,
            threshold,
            items: context.iter().map(|h| item_ref(h)).collect(),
            unfilled: Vec::new(),
            llm: Some(serde_json::json!({
                "model": answer.model,
                "provider": answer.provider,
                "usage": {"input_tokens": answer.usage.input_tokens, "output_tokens": answer.usage.output_tokens},
                "cost_micro_credits": answer.cost.0,
            })),
            save_offer: (!req.save).then_some(offer),
            saved_item,
            check: Some(check),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_of_an_answer_is_its_first_fence() {
        assert_eq!(
            code_of("Here:\n```rust\nfn a() {}\n```\nmore\n```x```"),
            "fn a() {}\n"
        );
        assert_eq!(code_of("fn bare() {}"), "fn bare() {}\n");
    }
}
