//! Checking a caller's answers against a template's questions.
//!
//! Every bad field is reported at once, each with its question id, so a
//! form can mark all of them in one round trip.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::{Question, QuestionKind};

/// Answers that passed [`Template::validate`](crate::Template::validate):
/// exactly one value of the right kind per question, defaults filled in.
///
/// Only `validate` makes one, so [`Template::render`](crate::Template::render)
/// can trust that every variable the files use has a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Answers(Map<String, Value>);

impl Answers {
    /// The answer to question `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.0.get(id)
    }

    /// Every answer by question id.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Why some answers were refused: one entry per bad field.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct AnswerErrors {
    /// In question order, then unknown ids in name order.
    pub errors: Vec<AnswerError>,
}

impl fmt::Display for AnswerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.question, e.message)?;
        }
        Ok(())
    }
}

/// One refused answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerError {
    /// The question id as the caller sent it (or as the template defines it,
    /// for a missing answer).
    pub question: String,
    /// What is wrong, as a stable word.
    pub code: AnswerErrorCode,
    /// What is wrong, for people.
    pub message: String,
}

/// Stable, machine-readable reasons an answer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerErrorCode {
    /// A required question has no answer and no default.
    Missing,
    /// A required text question got an empty (or blank) string.
    Empty,
    /// The JSON type does not fit the question's kind.
    WrongType,
    /// The answer to a choice question is not one of its choices.
    NotAChoice,
    /// A name does not have the question's [`NameShape`](crate::NameShape).
    BadShape,
    /// A line break, tab or other control character where the question
    /// takes one line (or a control character other than those in a
    /// multi-line one).
    InvalidCharacter,
    /// Shorter than `min_length`.
    TooShort,
    /// Longer than `max_length`.
    TooLong,
    /// A number outside `min`..=`max`.
    OutOfRange,
    /// A fractional number where a whole one is required.
    NotAnInteger,
    /// No question has this id.
    UnknownQuestion,
}

/// A refusal before the question id is attached.
pub(crate) struct Refusal {
    pub(crate) code: AnswerErrorCode,
    pub(crate) message: String,
}

fn refuse(code: AnswerErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Checks answers (a JSON object by question id) against `questions`.
pub(crate) fn validate(
    questions: &[Question],
    answers: &Map<String, Value>,
) -> Result<Answers, AnswerErrors> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for q in questions {
        // `null` counts as missing: forms send it for untouched fields.
        let given = answers.get(&q.id).filter(|v| !v.is_null());
        match resolve(q, given) {
            Ok(value) => {
                out.insert(q.id.clone(), value);
            }
            Err(r) => errors.push(AnswerError {
                question: q.id.clone(),
                code: r.code,
                message: r.message,
            }),
        }
    }
    // `Map` keeps keys sorted, so unknown ids come out in name order.
    for id in answers.keys() {
        if !questions.iter().any(|q| &q.id == id) {
            errors.push(AnswerError {
                question: id.clone(),
                code: AnswerErrorCode::UnknownQuestion,
                message: "this template has no question with this id".into(),
            });
        }
    }
    if errors.is_empty() {
        Ok(Answers(out))
    } else {
        Err(AnswerErrors { errors })
    }
}

/// The value question `q` gets from `given` (or its default).
fn resolve(q: &Question, given: Option<&Value>) -> Result<Value, Refusal> {
    let value = match (given, &q.default) {
        (Some(v), _) => v,
        (None, Some(default)) => default,
        (None, None) if q.required => {
            return Err(refuse(AnswerErrorCode::Missing, "an answer is required"));
        }
        // Only text and bool questions may lack a default when optional
        // (the manifest check enforces it).
        (None, None) => {
            return Ok(match q.kind {
                QuestionKind::Bool => Value::Bool(false),
                _ => Value::String(String::new()),
            });
        }
    };
    check_value(q, value)
}

/// Whether `value` is a valid answer to `q`; the value to render with.
pub(crate) fn check_value(q: &Question, value: &Value) -> Result<Value, Refusal> {
    let wrong_type = || {
        refuse(
            AnswerErrorCode::WrongType,
            format!("expected {}, got {}", q.kind.expected(), json_type(value)),
        )
    };
    match q.kind {
        QuestionKind::Text => {
            let s = value.as_str().ok_or_else(wrong_type)?;
            check_text(q, s)?;
            Ok(value.clone())
        }
        QuestionKind::Choice => {
            let s = value.as_str().ok_or_else(wrong_type)?;
            if q.choices.iter().any(|c| c == s) {
                Ok(value.clone())
            } else {
                Err(refuse(
                    AnswerErrorCode::NotAChoice,
                    format!("{s:?} is not one of {}", list(&q.choices)),
                ))
            }
        }
        QuestionKind::Bool => value.as_bool().map(Value::Bool).ok_or_else(wrong_type),
        QuestionKind::Number => {
            let n = value.as_f64().ok_or_else(wrong_type)?;
            check_number(q, value, n)?;
            Ok(value.clone())
        }
    }
}

fn check_text(q: &Question, s: &str) -> Result<(), Refusal> {
    let allowed = |c: char| q.multiline && matches!(c, '\n' | '\r' | '\t');
    if s.chars().any(|c| c.is_control() && !allowed(c)) {
        let what = if q.multiline {
            "must not contain control characters other than line breaks and tabs"
        } else {
            "must be one line, without line breaks, tabs or other control characters"
        };
        return Err(refuse(AnswerErrorCode::InvalidCharacter, what));
    }
    if s.trim().is_empty() {
        return if q.required {
            Err(refuse(AnswerErrorCode::Empty, "must not be empty"))
        } else {
            // An optional text left blank is the "no value" answer; shape
            // and length rules are for actual values.
            Ok(())
        };
    }
    let chars = s.chars().count();
    let max = q.max_chars();
    if chars > max as usize {
        return Err(refuse(
            AnswerErrorCode::TooLong,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    if let Some(min) = q.min_length
        && chars < min as usize
    {
        return Err(refuse(
            AnswerErrorCode::TooShort,
            format!("must be at least {min} characters, got {chars}"),
        ));
    }
    if let Some(shape) = q.pattern
        && !shape.matches(s)
    {
        return Err(refuse(
            AnswerErrorCode::BadShape,
            format!("{s:?} must be {}", shape.describe()),
        ));
    }
    Ok(())
}

fn check_number(q: &Question, value: &Value, n: f64) -> Result<(), Refusal> {
    if q.integer && !(value.is_i64() || value.is_u64()) {
        return Err(refuse(
            AnswerErrorCode::NotAnInteger,
            format!("must be a whole number, got {value}"),
        ));
    }
    let below = q.min.is_some_and(|min| n < min);
    let above = q.max.is_some_and(|max| n > max);
    if below || above {
        let range = match (q.min, q.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => String::new(),
        };
        return Err(refuse(
            AnswerErrorCode::OutOfRange,
            format!("must be {range}, got {value}"),
        ));
    }
    Ok(())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn list(choices: &[String]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::Manifest;

    fn questions() -> Vec<Question> {
        let manifest = Manifest::parse(
            r#"
title = "T"
language = "rust"
[[questions]]
id = "name"
prompt = "Name"
kind = "text"
pattern = "kebab"
required = true
max_length = 20
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
default = true
[[questions]]
id = "port"
prompt = "Port"
kind = "number"
integer = true
min = 1
max = 65535
default = 8080
[[questions]]
id = "note"
prompt = "Note"
kind = "text"
"#,
        );
        manifest.map(|m| m.questions).unwrap_or_default()
    }

    fn check(answers: Value) -> Result<Answers, AnswerErrors> {
        let map = answers.as_object().cloned().unwrap_or_default();
        validate(&questions(), &map)
    }

    #[test]
    fn defaults_fill_missing_answers() {
        let answers = check(json!({"name": "my-app", "db": null})).expect("valid");
        assert_eq!(
            serde_json::to_value(&answers).ok(),
            Some(
                json!({"name": "my-app", "db": "sqlite", "with_tests": true, "port": 8080, "note": ""})
            )
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errors = check(json!({
            "db": "mysql",
            "with_tests": "yes",
            "port": 70000,
            "zzz": 1,
            "aaa": 2,
        }))
        .expect_err("invalid");
        let got: Vec<(&str, AnswerErrorCode)> = errors
            .errors
            .iter()
            .map(|e| (e.question.as_str(), e.code))
            .collect();
        use AnswerErrorCode::*;
        assert_eq!(
            got,
            [
                ("name", Missing),
                ("db", NotAChoice),
                ("with_tests", WrongType),
                ("port", OutOfRange),
                ("aaa", UnknownQuestion),
                ("zzz", UnknownQuestion),
            ]
        );
        let text = errors.to_string();
        assert!(
            text.contains("db: \"mysql\" is not one of \"sqlite\", \"postgres\""),
            "{text}"
        );
        assert!(
            text.contains("with_tests: expected true or false, got a string"),
            "{text}"
        );
    }

    #[test]
    fn text_rules() {
        let code = |name: Value| {
            check(json!({ "name": name }))
                .err()
                .and_then(|e| e.errors.first().map(|e| e.code))
        };
        assert_eq!(code(json!("my-app")), None);
        assert_eq!(code(json!("  ")), Some(AnswerErrorCode::Empty));
        assert_eq!(code(json!("My App")), Some(AnswerErrorCode::BadShape));
        assert_eq!(code(json!("a".repeat(21))), Some(AnswerErrorCode::TooLong));
        assert_eq!(code(json!(5)), Some(AnswerErrorCode::WrongType));
        assert_eq!(code(json!("a\nb")), Some(AnswerErrorCode::InvalidCharacter));
        let note = |v: &str| check(json!({"name": "a", "note": v})).map(|_| ());
        assert_eq!(
            note("two\nlines").map_err(|e| e.errors[0].code),
            Err(AnswerErrorCode::InvalidCharacter)
        );
    }

    #[test]
    fn numbers_must_be_whole_when_asked() {
        let errors = check(json!({"name": "a", "port": 80.5})).expect_err("fraction");
        assert_eq!(errors.errors[0].code, AnswerErrorCode::NotAnInteger);
        assert!(check(json!({"name": "a", "port": 443})).is_ok());
    }
}
