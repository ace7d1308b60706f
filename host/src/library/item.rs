//! What a library item is, as written by its author: the fields of one
//! version, their checks, and the normalised hash duplicates are found by.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;

/// The languages items are written in.
pub const LANGUAGES: [&str; 10] = [
    "rust",
    "typescript",
    "tsx",
    "javascript",
    "sql",
    "html",
    "css",
    "wit",
    "toml",
    "shell",
];

/// What an item is: a snippet to paste, a component to drop in, a
/// template to fill, a whole module, or a configuration file.
pub const KINDS: [&str; 5] = ["snippet", "component", "template", "module", "config"];

const MAX_CODE_BYTES: usize = 100_000;

/// A name in the code written `{{name}}` that is filled in when the item is
/// served as the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placeholder {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The authored fields of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub language: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_license")]
    pub license: String,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub placeholders: Vec<Placeholder>,
    pub code: String,
}

fn default_kind() -> String {
    "snippet".into()
}

fn default_license() -> String {
    "Apache-2.0".into()
}

fn is_tag(t: &str) -> bool {
    (1..=40).contains(&t.len())
        && t.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'-' | b'+' | b'#' | b'.'))
        })
}

fn is_placeholder_name(n: &str) -> bool {
    (1..=40).contains(&n.len())
        && n.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit()))
}

impl ItemInput {
    /// Checks every field; the message names the first one wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return bad("title: 1-200 characters".into());
        }
        if self.description.chars().count() > 4_000 {
            return bad("description: at most 4,000 characters".into());
        }
        one_of("language", &self.language, &LANGUAGES)?;
        one_of("kind", &self.kind, &KINDS)?;
        if self.tags.len() > 20 {
            return bad("tags: at most 20".into());
        }
        if let Some(t) = self.tags.iter().find(|t| !is_tag(t)) {
            return bad(format!(
                "tags: {t:?} is not 1-40 characters of a-z, 0-9 and - + # ."
            ));
        }
        let license = self.license.trim();
        if license.is_empty() || license.len() > 64 {
            return bad("license: an SPDX identifier, at most 64 characters".into());
        }
        if self.dependencies.len() > 50 || self.dependencies.iter().any(|d| d.len() > 100) {
            return bad("dependencies: at most 50, each at most 100 characters".into());
        }
        if self.code.trim().is_empty() {
            return bad("code: must not be empty".into());
        }
        if self.code.len() > MAX_CODE_BYTES {
            return bad(format!("code: at most {MAX_CODE_BYTES} bytes"));
        }
        if self.placeholders.len() > 20 {
            return bad("placeholders: at most 20".into());
        }
        for (i, p) in self.placeholders.iter().enumerate() {
            if !is_placeholder_name(&p.name) {
                return bad(format!(
                    "placeholders: {:?} is not a snake_case name",
                    p.name
                ));
            }
            if self.placeholders[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("placeholders: {:?} is declared twice", p.name));
            }
            if !self.code.contains(&format!("{{{{{}}}}}", p.name)) {
                return bad(format!(
                    "placeholders: {:?} does not appear in the code as {{{{{}}}}}",
                    p.name, p.name
                ));
            }
        }
        Ok(())
    }

    /// sha256 of the code with trailing spaces, blank-line runs and the
    /// ends trimmed: a copy reformatted only in whitespace is the same code.
    pub fn code_hash(&self) -> String {
        code_hash(&self.code)
    }

    /// The code with every placeholder that has a value in `values`, or
    /// else a default, filled in, and the names of those left as `{{name}}`.
    pub fn fill(
        &self,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> (String, Vec<String>) {
        let mut code = self.code.clone();
        let mut unfilled = Vec::new();
        for p in &self.placeholders {
            let value = match values.get(&p.name) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => p.default.clone(),
                Some(other) => Some(other.to_string()),
            };
            match value {
                Some(v) => code = code.replace(&format!("{{{{{}}}}}", p.name), &v),
                None => unfilled.push(p.name.clone()),
            }
        }
        (code, unfilled)
    }
}

/// Refuses a `field` whose `value` is not one of `allowed`, naming them.
pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), Error> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{field}: {value:?} is not one of {}",
        allowed.join(", ")
    )))
}

pub fn code_hash(code: &str) -> String {
    let mut normal = String::with_capacity(code.len());
    let mut blank = false;
    for line in code.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if blank {
                continue;
            }
            blank = true;
        } else {
            blank = false;
        }
        normal.push_str(line);
        normal.push('\n');
    }
    hex::encode(Sha256::digest(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ItemInput {
        ItemInput {
            title: "Retry".into(),
            description: String::new(),
            language: "rust".into(),
            kind: "snippet".into(),
            tags: vec!["tokio".into()],
            license: "MIT".into(),
            dependencies: vec![],
            placeholders: vec![Placeholder {
                name: "max_tries".into(),
                description: String::new(),
                default: Some("3".into()),
            }],
            code: "for _ in 0..{{max_tries}} {}".into(),
        }
    }

    #[test]
    fn checks_name_the_field() {
        assert!(input().validate().is_ok());
        let mut i = input();
        i.language = "cobol".into();
        assert!(
            i.validate()
                .expect_err("refused")
                .to_string()
                .starts_with("language:")
        );
        let mut i = input();
        i.tags = vec!["Bad Tag".into()];
        assert!(
            i.validate()
                .expect_err("refused")
                .to_string()
                .starts_with("tags:")
        );
        let mut i = input();
        i.code = "for _ in 0..3 {}".into();
        assert!(
            i.validate()
                .expect_err("refused")
                .to_string()
                .contains("does not appear")
        );
    }

    #[test]
    fn whitespace_does_not_change_the_hash_and_placeholders_fill() {
        let a = code_hash("fn a() {}\n\n\n  x();   \n");
        let b = code_hash("\nfn a() {}\n\n  x();\n");
        assert_eq!(a, b);
        assert_ne!(a, code_hash("fn b() {}"));
        let i = input();
        assert_eq!(i.fill(&serde_json::Map::new()).0, "for _ in 0..3 {}");
        let v = serde_json::json!({"max_tries": "5"});
        assert_eq!(
            i.fill(v.as_object().expect("an object")).0,
            "for _ in 0..5 {}"
        );
        let mut none = input();
        none.placeholders[0].default = None;
        let (code, unfilled) = none.fill(&serde_json::Map::new());
        assert_eq!(code, "for _ in 0..{{max_tries}} {}");
        assert_eq!(unfilled, ["max_tries"]);
    }
}
