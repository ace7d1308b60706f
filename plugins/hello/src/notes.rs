//! Notes: short texts in the docs collection `notes`.
//!
//! - `POST /notes` `{"title", "body"}` → 201 and the note
//! - `GET /notes?limit=&cursor=` → `{"notes": [...], "next_cursor"}`, newest
//!   first
//! - `GET|PUT|DELETE /notes/{id}` → the note / the replaced note / 204;
//!   404 if there is no such note
//!
//! Validation and the JSON shapes are plain functions, tested natively.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_sdk::docs::{self, Document, Query};
use weft_sdk::{Request, Response, kv, log};

const COLLECTION: &str = "notes";
/// kv key of the sequence note ids are drawn from.
const SEQ_KEY: &str = "note-seq";
const MAX_TITLE_CHARS: usize = 200;
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// What a caller sends to create or replace a note.
#[derive(Debug, Deserialize)]
struct NoteInput {
    title: String,
    #[serde(default)]
    body: String,
}

impl NoteInput {
    fn from_request(req: &Request) -> Result<Self, Response> {
        let input: Self = req.json()?;
        let chars = input.title.chars().count();
        if !(1..=MAX_TITLE_CHARS).contains(&chars) {
            return Err(Response::error(
                400,
                "invalid_input",
                &format!("title must be 1 to {MAX_TITLE_CHARS} characters"),
            ));
        }
        Ok(input)
    }

    fn stored(self) -> Stored {
        Stored {
            title: self.title,
            body: self.body,
        }
    }
}

/// The document body as kept in the collection.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    title: String,
    body: String,
}

/// A note as the API returns it.
#[derive(Debug, Serialize)]
struct Note {
    id: String,
    title: String,
    body: String,
    version: u64,
    created_at: i64,
    updated_at: i64,
}

impl Note {
    fn from_document(doc: Document) -> Result<Self, Response> {
        // Only this plugin writes the collection, so a body that does not
        // decode is our bug: a 500 without detail.
        let stored: Stored = doc
            .json()
            .map_err(|_| Response::error(500, "internal", "a stored note could not be read"))?;
        Ok(Self {
            id: doc.id,
            title: stored.title,
            body: stored.body,
            version: doc.version,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
        })
    }
}

/// Ids are drawn from an atomic kv sequence and zero-padded, so their order
/// is creation order: listing orders by `id` because the WIT's `order-by`
/// names body fields (or `id`), not the document's `created-at`. Ten digits
/// outlast any document quota.
fn note_id(seq: i64) -> String {
    format!("n{seq:010}")
}

fn page_limit(raw: Option<&str>) -> Result<u32, Response> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE);
    };
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| {
            Response::error(
                400,
                "invalid_input",
                &format!("limit must be an integer from 1 to {MAX_PAGE}"),
            )
        })
}

fn not_found(id: &str) -> Response {
    Response::error(404, "not_found", &format!("no note with id {id:?}"))
}

pub(crate) fn create(req: &Request) -> weft_sdk::Result {
    let input = NoteInput::from_request(req)?;
    let id = note_id(kv::increment(SEQ_KEY, 1)?);
    // `Some(0)`: only if absent, so a reset sequence can never overwrite.
    let doc = docs::put_json(COLLECTION, &id, &input.stored(), Some(0))?;
    log::info(&format!("note {id} created"));
    Ok(Response::json(201, &Note::from_document(doc)?))
}

pub(crate) fn list(req: &Request) -> weft_sdk::Result {
    let limit = page_limit(req.query_param("limit").as_deref())?;
    let cursor = req.query_param("cursor").filter(|c| !c.is_empty());
    let query = Query::new()
        .order_by("id", true)
        .limit(limit)
        .cursor(cursor.as_deref());
    let page = docs::query(COLLECTION, &query)?;
    let notes = page
        .documents
        .into_iter()
        .map(Note::from_document)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(
        200,
        &json!({ "notes": notes, "next_cursor": page.next_cursor }),
    ))
}

pub(crate) fn get(req: &Request) -> weft_sdk::Result {
    let id = req.param("id").unwrap_or_default();
    match docs::get(COLLECTION, id)? {
        Some(doc) => Ok(Response::json(200, &Note::from_document(doc)?)),
        None => Err(not_found(id)),
    }
}

pub(crate) fn replace(req: &Request) -> weft_sdk::Result {
    let id = req.param("id").unwrap_or_default();
    let input = NoteInput::from_request(req)?;
    let current = docs::get(COLLECTION, id)?.ok_or_else(|| not_found(id))?;
    // Conditional on the version read, so a concurrent delete or edit
    // answers 409 instead of being silently overwritten.
    let doc = docs::put_json(COLLECTION, id, &input.stored(), Some(current.version))?;
    Ok(Response::json(200, &Note::from_document(doc)?))
}

pub(crate) fn delete(req: &Request) -> weft_sdk::Result {
    let id = req.param("id").unwrap_or_default();
    if docs::delete(COLLECTION, id)? {
        Ok(Response::empty(204))
    } else {
        Err(not_found(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_sdk::Method;

    fn input(body: &str) -> Result<NoteInput, Response> {
        NoteInput::from_request(&Request::new(Method::Post, "/notes").with_body(body))
    }

    fn code(r: &Response) -> String {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn accepts_valid_notes() {
        let n = input(r#"{"title":"t","body":"b"}"#).expect("valid");
        assert_eq!((n.title.as_str(), n.body.as_str()), ("t", "b"));
        let n = input(r#"{"title":"only a title"}"#).expect("body is optional");
        assert_eq!(n.body, "");
        let long = "é".repeat(MAX_TITLE_CHARS);
        assert!(input(&json!({ "title": long }).to_string()).is_ok());
    }

    #[test]
    fn rejects_invalid_notes() {
        let too_long = "x".repeat(MAX_TITLE_CHARS + 1);
        for body in [
            "",
            "not json",
            r#"{"body":"no title"}"#,
            r#"{"title":""}"#,
            r#"{"title":7}"#,
            &json!({ "title": too_long }).to_string(),
        ] {
            let err = input(body).expect_err(body);
            assert_eq!(
                (err.status, code(&err)),
                (400, "invalid_input".into()),
                "{body}"
            );
        }
    }

    #[test]
    fn ids_sort_in_creation_order() {
        assert_eq!(note_id(1), "n0000000001");
        let mut ids: Vec<String> = [10, 9, 100, 1, 99_999].into_iter().map(note_id).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "n0000000001",
                "n0000000009",
                "n0000000010",
                "n0000000100",
                "n0000099999"
            ]
        );
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).ok(), Some(DEFAULT_PAGE));
        assert_eq!(page_limit(Some("5")).ok(), Some(5));
        for bad in ["0", "101", "-1", "x", ""] {
            assert_eq!(
                page_limit(Some(bad)).map_err(|r| r.status),
                Err(400),
                "{bad}"
            );
        }
    }

    #[test]
    fn notes_come_from_documents() {
        let doc = Document {
            id: "n0000000001".into(),
            body: r#"{"title":"t","body":"b"}"#.into(),
            version: 2,
            created_at: 10,
            updated_at: 20,
        };
        let note = Note::from_document(doc).expect("decodes");
        assert_eq!(
            serde_json::to_value(&note).ok(),
            Some(json!({
                "id": "n0000000001", "title": "t", "body": "b",
                "version": 2, "created_at": 10, "updated_at": 20
            }))
        );
        let broken = Document {
            id: "x".into(),
            body: "{}".into(),
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(
            Note::from_document(broken).map_err(|r| r.status).err(),
            Some(500)
        );
    }
}
