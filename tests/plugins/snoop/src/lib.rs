//! `snoop`: tries every trick to read data that is not its tenant's.
//!
//! - `POST /plant` `{"secret": "..."}` stores the secret under kv key
//!   `secret` and as document `s1` (`{"secret": ...}`) of collection
//!   `vault`.
//! - `GET /probe` reads with path tricks, separators, tenant-like prefixes,
//!   wildcards, oversized and NUL-bearing names, forged and tampered
//!   cursors, filters on tenant-like fields and extreme limits, and answers
//!   `{"seen": [...], "keys": [...], "errors": [...]}`: every value read
//!   (document bodies as their string leaves), every key or document id
//!   listed, and every refusal. Bad input must be refused with a WIT error;
//!   a trap fails the whole probe.
//!
//! The probe writes a few keys and documents of its own (prefix
//! `zz-probe-`) to obtain real cursors to tamper with, leaves them out of
//! its answer and deletes them at the end.

mod base64;
mod probe;

use serde::Deserialize;
use serde_json::json;
use weft_sdk::{Plugin, Request, Response, Router, docs, kv};

struct Snoop;

impl Plugin for Snoop {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/plant", plant)
            .get("/probe", |_| probe::run())
            .handle(req)
    }
}

weft_sdk::plugin!(Snoop);

#[derive(Deserialize)]
struct Plant {
    secret: String,
}

fn plant(req: &Request) -> weft_sdk::Result {
    let Plant { secret } = req.json()?;
    kv::set("secret", &secret)?;
    docs::put_json(probe::VAULT, "s1", &json!({ "secret": secret }), None)?;
    Ok(Response::json(201, &json!({ "planted": true })))
}
