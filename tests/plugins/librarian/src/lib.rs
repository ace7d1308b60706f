//! `librarian`: uses the code library (`weft:platform@0.5.0`).
//!
//! - `POST /search` `{"q", "language"?, "kind"?, "tags"?, "limit"?,
//!   "semantic_ratio"?, "explain"?}`: `{"mode", "hits": [{"id", "global", "title",
//!   "language", "confidence", "why"}]}`.
//! - `POST /get` `{"id", "version"?}`: the item (`code` included), or 404.
//! - `POST /use` `{"id"}`: `{"used": bool}`.
//! - `POST /generate` `{"request", "language"?, "values"?, "save"?, "model"?}`: the
//!   generated code and where it came from; then stores the code under
//!   `last` (a write after the library call).
//! - `POST /write-then-search`: writes first, then searches (refused).

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_sdk::library::{self, Generate, Query, Source};
use weft_sdk::{Plugin, Request, Response, Router, kv};

struct Librarian;

#[derive(Deserialize)]
struct SearchBody {
    q: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    semantic_ratio: Option<f32>,
    #[serde(default)]
    explain: bool,
}

fn item_json(i: &library::Item) -> Value {
    json!({
        "id": i.id,
        "version": i.version,
        "current_version": i.current_version,
        "global": i.global,
        "title": i.title,
        "language": i.language,
        "kind": i.kind,
        "tags": i.tags,
        "code": i.code,
        "quality": i.quality,
        "uses": i.uses,
    })
}

fn search(req: &Request) -> weft_sdk::Result {
    let body: SearchBody = req.json()?;
    let mut q = Query::new(&body.q);
    if let Some(l) = &body.language {
        q = q.language(l);
    }
    if let Some(k) = &body.kind {
        q = q.kind(k);
    }
    for t in &body.tags {
        q = q.tag(t);
    }
    if let Some(n) = body.limit {
        q = q.limit(n);
    }
    if let Some(r) = body.semantic_ratio {
        q = q.semantic_ratio(r);
    }
    if body.explain {
        q = q.explain();
    }
    let found = q.search()?;
    let hits: Vec<Value> = found
        .hits
        .iter()
        .map(|h| {
            json!({
                "id": h.item.id,
                "global": h.item.global,
                "title": h.item.title,
                "language": h.item.language,
                "confidence": h.confidence,
                "why": serde_json::from_str::<Value>(&h.why).unwrap_or(Value::Null),
            })
        })
        .collect();
    let mode = match found.mode {
        library::Mode::Hybrid => "hybrid",
        library::Mode::Keyword => "keyword",
    };
    Ok(Response::json(200, &json!({ "mode": mode, "hits": hits })))
}

fn get(req: &Request) -> weft_sdk::Result {
    #[derive(Deserialize)]
    struct Body {
        id: String,
        #[serde(default)]
        version: Option<u64>,
    }
    let body: Body = req.json()?;
    let item = match body.version {
        Some(v) => library::get_version(&body.id, v)?,
        None => library::get(&body.id)?,
    };
    Ok(match item {
        Some(i) => Response::json(200, &item_json(&i)),
        None => Response::error(404, "not_found", "no such library item"),
    })
}

fn record_use(req: &Request) -> weft_sdk::Result {
    #[derive(Deserialize)]
    struct Body {
        id: String,
    }
    let body: Body = req.json()?;
    let used = library::record_use(&body.id)?;
    Ok(Response::json(200, &json!({ "used": used })))
}

fn generate(req: &Request) -> weft_sdk::Result {
    #[derive(Deserialize)]
    struct Body {
        request: String,
        #[serde(default)]
        language: Option<String>,
        #[serde(default)]
        values: Map<String, Value>,
        #[serde(default)]
        save: bool,
        #[serde(default)]
        model: Option<String>,
    }
    let body: Body = req.json()?;
    let mut g = Generate::new(&body.request);
    if let Some(l) = &body.language {
        g = g.language(l);
    }
    for (name, value) in body.values {
        g = g.value(&name, value);
    }
    if body.save {
        g = g.save();
    }
    if let Some(m) = &body.model {
        g = g.model(m);
    }
    let out = g.run()?;
    kv::set("last", out.code.as_bytes())?;
    Ok(Response::json(
        200,
        &json!({
            "served_by": match out.served_by { Source::Library => "library", Source::Llm => "llm" },
            "code": out.code,
            "confidence": out.confidence,
            "threshold": out.threshold,
            "items": out.items.iter().map(|i| json!({"id": i.id, "version": i.version, "title": i.title})).collect::<Vec<_>>(),
            "unfilled": out.unfilled,
            "model": out.model,
            "cost": out.cost,
            "saved_item": out.saved_item,
        }),
    ))
}

fn write_then_search(_req: &Request) -> weft_sdk::Result {
    kv::set("before", b"x")?;
    let found = Query::new("anything").search()?;
    Ok(Response::json(200, &json!({ "hits": found.hits.len() })))
}

impl Plugin for Librarian {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/search", search)
            .post("/get", get)
            .post("/use", record_use)
            .post("/generate", generate)
            .post("/write-then-search", write_then_search)
            .handle(req)
    }
}

weft_sdk::plugin!(Librarian);
