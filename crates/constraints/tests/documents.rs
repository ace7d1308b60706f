//! The real constraint documents in `constraints/`: they parse, every rule's
//! examples prove its checks, and the checker finds what it should in
//! realistic code.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use weft_constraints::{ConstraintSet, ExampleKind, Report, Severity, prompt_section};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../constraints")
}

fn set() -> ConstraintSet {
    match ConstraintSet::load(dir()) {
        Ok(set) => set,
        Err(e) => panic!("constraints/ does not parse: {e}"),
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

fn ids(report: &Report) -> Vec<&str> {
    report
        .violations
        .iter()
        .map(|v| v.rule_id.as_str())
        .collect()
}

#[test]
fn all_five_documents_load_with_their_prefixes() {
    let set = set();
    let names: Vec<&str> = set.documents().iter().map(|d| d.name()).collect();
    assert_eq!(
        names,
        [
            "accessibility",
            "apis",
            "performance",
            "security",
            "styling"
        ]
    );
    for (doc, prefix) in set
        .documents()
        .iter()
        .zip(["A11Y-", "API-", "PERF-", "SEC-", "STY-"])
    {
        assert!(doc.version() >= 1);
        assert!(
            (8..=12).contains(&doc.rules().len()),
            "{} has {} rules",
            doc.name(),
            doc.rules().len()
        );
        for rule in doc.rules() {
            assert!(
                rule.id().starts_with(prefix),
                "{} in {}",
                rule.id(),
                doc.name()
            );
        }
        let statics = doc.rules().iter().filter(|r| r.is_static()).count();
        assert!(
            statics * 2 >= doc.rules().len(),
            "{}: too few static rules",
            doc.name()
        );
        assert!(
            doc.rules().iter().any(|r| !r.is_static()),
            "{}: no review-only rule",
            doc.name()
        );
    }
}

#[test]
fn hashes_are_of_the_file_text() {
    let set = set();
    for doc in set.documents() {
        let text = std::fs::read(dir().join(format!("{}.md", doc.name()))).expect("readable");
        assert_eq!(doc.sha256(), hex::encode(Sha256::digest(&text)));
    }
}

/// The documents test themselves: every `bad` example is flagged by its
/// rule and no `good` example is.
#[test]
fn every_example_proves_its_rule() {
    let set = set();
    let failures = set.verify_examples();
    let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "\n{}", text.join("\n"));
    // And the proof is not vacuous.
    let bad = set
        .rules()
        .flat_map(|r| r.examples())
        .filter(|e| e.kind == ExampleKind::Bad)
        .count();
    assert!(bad >= 80, "only {bad} bad examples");
}

/// A good example of one rule must not break another rule of the same
/// language either, or the documents would teach contradictory code.
#[test]
fn good_examples_follow_the_other_rules_too() {
    let set = set();
    let mut problems = Vec::new();
    for rule in set.rules() {
        for example in rule.examples() {
            if example.kind != ExampleKind::Good {
                continue;
            }
            let Some(language) = &example.language else {
                continue;
            };
            // With the rule's own tags, so that tagged rules are in play
            // exactly where the example's own rule is.
            let report = set.check(&example.code, language, rule.tags());
            for v in report.violations {
                problems.push(format!(
                    "{}:{} ({}) breaks {} at example line {}: {}",
                    rule.document(),
                    example.line,
                    rule.id(),
                    v.rule_id,
                    v.line,
                    v.excerpt
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn applicability_follows_language_and_tags() {
    let set = set();
    let rust: Vec<&str> = set.applicable("rust", &[]).iter().map(|r| r.id()).collect();
    assert!(rust.contains(&"SEC-001"), "`*` applies to every language");
    assert!(rust.contains(&"SEC-003"));
    assert!(!rust.contains(&"A11Y-001"));
    assert!(!rust.contains(&"API-002"), "tagged rules need a tag");
    assert!(!rust.contains(&"PERF-010"));

    let billing = set.applicable("Rust", &tags(&["axum", "Payments"]));
    assert!(
        billing.iter().any(|r| r.id() == "API-002"),
        "tags and language ignore case"
    );
    assert!(!billing.iter().any(|r| r.id() == "PERF-010"));
    let plugin = set.applicable("rust", &tags(&["plugin"]));
    assert!(plugin.iter().any(|r| r.id() == "PERF-010"));

    let tsx: Vec<&str> = set.applicable("tsx", &[]).iter().map(|r| r.id()).collect();
    assert!(tsx.contains(&"A11Y-001") && tsx.contains(&"STY-005") && tsx.contains(&"SEC-005"));
    assert!(!tsx.contains(&"SEC-003"));

    let unknown: Vec<&str> = set
        .applicable("cobol", &[])
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(
        unknown,
        ["SEC-001"],
        "only `*` rules apply to other languages"
    );
}

/// A handler as a model might write it on a bad day.
const HANDLER: &str = r#"use axum::{Json, extract::{Path, State}, http::StatusCode};

const API_KEY: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";

async fn get_note(State(app): State<App>, Path(raw): Path<String>) -> impl IntoResponse {
    let id: i64 = raw.parse().unwrap();
    let sql = format!("SELECT * FROM notes WHERE id = {}", id);
    match sqlx::query_as::<_, Note>(&sql).fetch_one(&app.pool).await {
        Ok(note) => (StatusCode::OK, Json(note)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn notify(app: &App, ids: Vec<String>) {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for id in ids {
        let row = sqlx::query("SELECT email FROM users WHERE id = $1").bind(&id).fetch_one(&app.pool).await;
        std::thread::sleep(std::time::Duration::from_millis(10));
        let _ = tx.send(format!("{row:?}"));
    }
}
"#;

#[test]
fn a_careless_handler_breaks_many_rules() {
    let set = set();
    let report = set.check(HANDLER, "rust", &[]);
    let found = ids(&report);
    for (id, line) in [
        ("SEC-001", 3),
        ("SEC-008", 6),
        ("SEC-002", 7),
        ("PERF-007", 7),
        ("SEC-010", 10),
        ("PERF-002", 15),
        ("PERF-001", 17),
        ("PERF-003", 18),
    ] {
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.rule_id == id && v.line == line),
            "expected {id} at line {line}, got {:#?}",
            report.violations
        );
    }
    assert!(report.has_errors());
    // The secret is reported without being copied.
    let secret = report.violations.iter().find(|v| v.rule_id == "SEC-001");
    assert_eq!(secret.map(|v| v.excerpt.as_str()), Some("[redacted]"));
    // Ordered by line, one violation per rule and line.
    let keys: Vec<(usize, &str)> = report
        .violations
        .iter()
        .map(|v| (v.line, v.rule_id.as_str()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted);
    assert!(
        found
            .iter()
            .all(|id| report.checked.iter().any(|c| c == id))
    );
    assert!(report.needs_review.iter().any(|id| id == "SEC-009"));
    assert!(!report.checked.iter().any(|id| id == "SEC-009"));

    let excerpt = report.violations.iter().find(|v| v.rule_id == "PERF-003");
    assert_eq!(
        excerpt.map(|v| v.excerpt.as_str()),
        Some("std::thread::sleep(std::time::Duration::from_millis(10));")
    );
}

/// A React component with the usual markup shortcuts.
const COMPONENT: &str = r##"export function NoteCard({ note, onOpen, saving }: Props) {
  return (
    <div className="card" onClick={() => onOpen(note.id)} style={{ color: "#333" }}>
      <img src={note.cover} />
      <div dangerouslySetInnerHTML={{ __html: note.body }} />
      {saving && <span>Saving…</span>}
      <button type="button" onClick={() => remove(note.id)}>
        <TrashIcon />
      </button>
    </div>
  );
}
"##;

#[test]
fn a_careless_component_breaks_many_rules() {
    let set = set();
    let report = set.check(COMPONENT, "tsx", &[]);
    for (id, line) in [
        ("A11Y-003", 3),
        ("STY-005", 3),
        ("A11Y-001", 4),
        ("PERF-006", 4),
        ("SEC-005", 5),
        ("A11Y-007", 6),
        ("A11Y-008", 7),
    ] {
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.rule_id == id && v.line == line),
            "expected {id} at line {line}, got {:#?}",
            report.violations
        );
    }
    let warning = report.violations.iter().find(|v| v.rule_id == "A11Y-007");
    assert_eq!(warning.map(|v| v.severity), Some(Severity::Warning));
    assert!(report.needs_review.iter().any(|id| id == "A11Y-005"));
}

#[test]
fn clean_code_passes() {
    let set = set();
    let code = r#"/// Fetches one note of the caller's tenant.
pub async fn get_note(
    State(app): State<App>,
    tenant: TenantId,
    Path(id): Path<String>,
) -> Result<Json<Note>, ApiError> {
    let note = sqlx::query_as::<_, Note>("SELECT id, title FROM notes WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(&id)
        .fetch_optional(&app.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("note"))?;
    Ok(Json(note))
}
"#;
    let report = set.check(code, "rust", &[]);
    assert!(report.is_clean(), "{:#?}", report.violations);
    assert!(!report.checked.is_empty());
}

#[test]
fn the_prompt_lists_the_applicable_rules_compactly() {
    let set = set();
    let rules = set.applicable("sql", &[]);
    let prompt = prompt_section(&rules);
    for rule in &rules {
        assert!(prompt.contains(rule.id()), "{} missing", rule.id());
        assert!(prompt.contains(rule.instruction()));
    }
    assert_eq!(prompt.lines().count(), rules.len() + 1);
    assert!(prompt.contains("- SEC-009 Scope every query to the tenant (error, reviewed): "));
    assert_eq!(prompt_section(&[]), "");
}

#[test]
fn reports_serialize_as_the_host_stores_them() {
    let set = set();
    let report = set.check("const price = 19.99;\n", "typescript", &[]);
    let json = serde_json::to_value(&report).expect("serializable");
    assert_eq!(json["violations"][0]["rule_id"], "API-004");
    assert_eq!(json["violations"][0]["severity"], "error");
    assert_eq!(json["violations"][0]["line"], 1);
    assert_eq!(json["violations"][0]["excerpt"], "const price = 19.99;");
    assert!(json["needs_review"].is_array() && json["checked"].is_array());
}
