//! `undeclared`: its manifest declares only `kv`, but `GET /x` calls
//! `docs`, so the component imports `weft:platform/docs@0.1.0` and the host
//! must refuse to install it.

use serde_json::json;
use weft_sdk::{Plugin, Request, Response, Router, docs, kv};

struct Undeclared;

impl Plugin for Undeclared {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/x", |_| -> weft_sdk::Result {
                // The undeclared capability.
                let doc = docs::get("things", "x")?;
                Ok(Response::json(200, &json!({ "found": doc.is_some() })))
            })
            .get("/y", |_| -> weft_sdk::Result {
                // The declared one, so the manifest is not simply wrong.
                let value = kv::get("y")?;
                Ok(Response::json(200, &json!({ "found": value.is_some() })))
            })
            .handle(req)
    }
}

weft_sdk::plugin!(Undeclared);
