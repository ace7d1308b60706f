//! The constraint documents (`constraints/*.md`, parsed and checked by
//! `weft-constraints`): loaded at start, every version kept in the
//! database and served, included in generation prompts, and used to lint
//! items (an item's static violations lower its quality).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::Row;
use weft_constraints::{ConstraintSet, Report, Rule};

use crate::db::{self, Db, Mode, Scope};
use crate::ids::now_ms;

/// The loaded documents and their texts.
#[derive(Debug, Default)]
pub struct Constraints {
    set: ConstraintSet,
    texts: Vec<(String, String)>,
}

/// A document as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocSummary {
    pub name: String,
    pub title: String,
    pub version: u32,
    pub sha256: String,
    pub rules: usize,
}

/// One rule as served.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub instruction: String,
    /// Whether a static check covers it (otherwise it needs review).
    pub checked_statically: bool,
    pub tags: Vec<String>,
}

/// The default directory: the source tree's `constraints/`.
pub fn default_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../constraints"))
}

impl Constraints {
    /// Reads every document of `dir` but its README; a set that does not
    /// parse is refused whole (the error names the file and line), and the
    /// library runs without constraints, with a warning.
    pub fn load(dir: &Path) -> Self {
        let mut texts = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "no constraint documents found");
            return Self::default();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "md")
                    && p.file_name().is_some_and(|n| n != "README.md")
            })
            .collect();
        paths.sort();
        for path in paths {
            let (Some(name), Ok(text)) = (
                path.file_stem().and_then(|s| s.to_str()),
                std::fs::read_to_string(&path),
            ) else {
                continue;
            };
            texts.push((name.to_owned(), text));
        }
        match ConstraintSet::parse_all(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))) {
            Ok(set) => Self { set, texts },
            Err(err) => {
                tracing::warn!(%err, "constraint documents refused; generation runs without them");
                Self::default()
            }
        }
    }

    pub fn applicable(&self, language: &str, tags: &[String]) -> Vec<&Rule> {
        self.set.applicable(language, tags)
    }

    /// The prompt lines of the rules that apply.
    pub fn prompt(&self, language: Option<&str>, tags: &[String]) -> String {
        let rules = match language {
            Some(l) => self.set.applicable(l, tags),
            // No language known: the rules that apply to every language.
            None => self
                .set
                .rules()
                .filter(|r| matches!(r.applies(), weft_constraints::Applies::All))
                .collect(),
        };
        weft_constraints::prompt_section(&rules)
    }

    /// The rule with `id`, if a document in force has it.
    pub fn rule(&self, id: &str) -> Option<&weft_constraints::Rule> {
        self.set.rule(id)
    }

    pub fn check(&self, code: &str, language: &str, tags: &[String]) -> Report {
        self.set.check(code, language, tags)
    }

    pub fn list(&self) -> Vec<DocSummary> {
        self.set
            .documents()
            .iter()
            .map(|d| DocSummary {
                name: d.name().to_owned(),
                title: d.title().to_owned(),
                version: d.version(),
                sha256: d.sha256().to_owned(),
                rules: d.rules().len(),
            })
            .collect()
    }

    /// Document `name` as loaded: its summary, rules and text.
    pub fn document(&self, name: &str) -> Option<(DocSummary, Vec<RuleView>, &str)> {
        let doc = self.set.documents().iter().find(|d| d.name() == name)?;
        let text = self
            .texts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())?;
        let rules = doc
            .rules()
            .iter()
            .map(|r| RuleView {
                id: r.id().to_owned(),
                title: r.title().to_owned(),
                severity: r.severity().as_str().to_owned(),
                instruction: r.instruction().to_owned(),
                checked_statically: r.is_static(),
                tags: r.tags().to_vec(),
            })
            .collect();
        let summary = self.list().into_iter().find(|s| s.name == name)?;
        Some((summary, rules, text))
    }

    /// Records every loaded document version the database lacks. A text
    /// that changed without its `version:` going up is kept as loaded and
    /// warned about: the stored text of that version stays the first one.
    pub async fn record(&self, db: &Db) -> Result<(), db::Error> {
        let mut tx = db.begin(Scope::Platform, Mode::Write).await?;
        for doc in self.set.documents() {
            let Some((_, text)) = self.texts.iter().find(|(n, _)| n == doc.name()) else {
                continue;
            };
            let stored = sqlx::query(
                "SELECT sha256 FROM library_constraints WHERE name = $1 AND version = $2",
            )
            .bind(doc.name().to_owned())
            .bind(i64::from(doc.version()))
            .fetch_optional(&mut *tx)
            .await?;
            match stored {
                Some(row) => {
                    let sha: String = row.try_get("sha256")?;
                    if sha != doc.sha256() {
                        tracing::warn!(
                            document = doc.name(),
                            version = doc.version(),
                            "constraint document changed without a version bump"
                        );
                    }
                }
                None => {
                    sqlx::query(
                        "INSERT INTO library_constraints (name, version, sha256, body, loaded_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(doc.name().to_owned())
                    .bind(i64::from(doc.version()))
                    .bind(doc.sha256().to_owned())
                    .bind(text.clone())
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Every stored version of document `name`: (version, sha256, loaded_at), and the text of `version`.
pub async fn history(
    db: &Db,
    name: &str,
    version: Option<i64>,
) -> Result<(Vec<(i64, String, i64)>, Option<String>), db::Error> {
    let mut tx = db.begin(Scope::Platform, Mode::Read).await?;
    let rows = sqlx::query(
        "SELECT version, sha256, loaded_at FROM library_constraints WHERE name = $1 ORDER BY version",
    )
    .bind(name.to_owned())
    .fetch_all(&mut *tx)
    .await?;
    let body = match version {
        Some(v) => {
            sqlx::query("SELECT body FROM library_constraints WHERE name = $1 AND version = $2")
                .bind(name.to_owned())
                .bind(v)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("body"))
                .transpose()?
        }
        None => None,
    };
    tx.commit().await?;
    let versions = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get("version")?,
                r.try_get("sha256")?,
                r.try_get("loaded_at")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((versions, body))
}
