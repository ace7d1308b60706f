//! Notes, the example resource: `GET /v1/notes`, `POST /v1/notes`,
//! `GET /v1/notes/{id}`. Validation is a plain function, so it is tested
//! without a server.
{% set p1 = '$1' if database == 'postgres' else '?' %}
{% set p2 = '$2' if database == 'postgres' else '?' %}

{% if database == 'none' %}
use std::sync::{Arc, RwLock};

{% endif %}
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

const MAX_TITLE_CHARS: usize = 200;
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// A note as the API returns it.
#[derive(Debug, Clone, Serialize{% if database != 'none' %}, sqlx::FromRow{% endif %})]
pub struct Note {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// What `POST /v1/notes` takes.
#[derive(Debug, Deserialize)]
pub struct NewNote {
    pub title: String,
    #[serde(default)]
    pub body: String,
}

impl NewNote {
    /// The note with its title trimmed, or why it is refused.
    pub fn validate(self) -> Result<Self, ApiError> {
        let title = self.title.trim();
        let chars = title.chars().count();
        if !(1..=MAX_TITLE_CHARS).contains(&chars) {
            return Err(ApiError::Invalid(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters"
            )));
        }
        Ok(Self {
            title: title.to_owned(),
            body: self.body,
        })
    }
}

/// `GET /v1/notes?limit=`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub limit: Option<u32>,
}

impl ListParams {
    /// The page size, or why it is refused.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::Invalid(format!("limit must be 1 to {MAX_LIMIT}"))),
        }
    }
}
{% if database == 'none' %}

/// The notes, newest last, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct Store {
    notes: Arc<RwLock<Vec<Note>>>,
}

impl Store {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Note>> {
        // A writer that panicked cannot have left a half-pushed note, so
        // the data is still good: go on rather than fail every request.
        self.notes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Note>> {
        self.notes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Newest first.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Vec<Note>>> {
    let limit = params.limit()? as usize;
    let notes = state.notes.read();
    Ok(Json(notes.iter().rev().take(limit).cloned().collect()))
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewNote>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let Json(input) = body?;
    let input = input.validate()?;
    let mut notes = state.notes.write();
    let note = Note {
        id: notes.last().map_or(1, |n| n.id + 1),
        title: input.title,
        body: input.body,
        created_at: Utc::now(),
    };
    notes.push(note.clone());
    Ok((StatusCode::CREATED, Json(note)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Note>> {
    let notes = state.notes.read();
    let note = notes.iter().find(|n| n.id == id).cloned();
    note.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("note {id}")))
}
{% else %}

/// Newest first.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Vec<Note>>> {
    let notes = sqlx::query_as::<_, Note>(
        "SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT {{ p1 }}",
    )
    .bind(i64::from(params.limit()?))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(notes))
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewNote>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let Json(input) = body?;
    let input = input.validate()?;
    let note = sqlx::query_as::<_, Note>(
        "INSERT INTO notes (title, body) VALUES ({{ p1 }}, {{ p2 }}) \
         RETURNING id, title, body, created_at",
    )
    .bind(&input.title)
    .bind(&input.body)
    .fetch_one(&state.db)
    .await?;
    Ok((StatusCode::CREATED, Json(note)))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Note>> {
    sqlx::query_as::<_, Note>("SELECT id, title, body, created_at FROM notes WHERE id = {{ p1 }}")
        .bind(id)
        .fetch_optional(&state.db)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("note {id}")))
}
{% endif %}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str) -> NewNote {
        NewNote {
            title: title.to_owned(),
            body: String::new(),
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            new("  milk ").validate().map(|n| n.title).ok(),
            Some("milk".into())
        );
        assert!(new("   ").validate().is_err());
        assert!(new(&"x".repeat(MAX_TITLE_CHARS + 1)).validate().is_err());
        assert!(new(&"é".repeat(MAX_TITLE_CHARS)).validate().is_ok());
    }

    #[test]
    fn limits_have_a_default_and_a_range() {
        let limit = |limit| ListParams { limit }.limit().ok();
        assert_eq!(limit(None), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some(5)), Some(5));
        assert_eq!(limit(Some(0)), None);
        assert_eq!(limit(Some(MAX_LIMIT + 1)), None);
    }
}
