//! `hello`, the template Weft plugin: copy this crate to start a new one.
//!
//! - `GET /hello`: `hello` as text, touching no capability (benchmarks).
//! - `GET /whoami`: the caller, or `{"anonymous": true}`.
//! - `GET /greeting`: the tenant's `greeting` setting.
//! - `GET /counter`, `POST /counter/increment`: a counter in kv.
//! - `/notes`: notes in the docs collection `notes` (see [`notes`]).

mod notes;

use serde::Deserialize;
use serde_json::json;
use weft_sdk::{Plugin, Request, Response, Router, config, kv};

struct Hello;

impl Plugin for Hello {
    fn handle(req: Request) -> Response {
        router().handle(req)
    }
}

weft_sdk::plugin!(Hello);

fn router() -> Router {
    Router::new()
        .get("/hello", |_| Response::text(200, "hello"))
        .get("/whoami", whoami)
        .get("/greeting", greeting)
        .get("/counter", counter)
        .post("/counter/increment", increment)
        .get("/notes", notes::list)
        .post("/notes", notes::create)
        .get("/notes/{id}", notes::get)
        .put("/notes/{id}", notes::replace)
        .delete("/notes/{id}", notes::delete)
}

fn whoami(req: &Request) -> Response {
    match &req.caller {
        Some(principal) => Response::json(200, principal),
        None => Response::json(200, &json!({ "anonymous": true })),
    }
}

fn greeting(_: &Request) -> weft_sdk::Result {
    // The host fills in the manifest's default, so this is `None` only if
    // the manifest stops declaring the setting.
    let greeting: Option<String> = config::get("greeting")?;
    Ok(Response::json(200, &json!({ "greeting": greeting })))
}

const COUNTER_KEY: &str = "counter";

fn counter(_: &Request) -> weft_sdk::Result {
    let value = kv::get_i64(COUNTER_KEY)?.unwrap_or(0);
    Ok(Response::json(200, &json!({ "value": value })))
}

/// Body of `POST /counter/increment`; the body itself is optional.
#[derive(Deserialize)]
struct Increment {
    #[serde(default = "one")]
    by: i64,
}

fn one() -> i64 {
    1
}

fn increment(req: &Request) -> weft_sdk::Result {
    let by = if req.body.is_empty() {
        one()
    } else {
        req.json::<Increment>()?.by
    };
    let value = kv::increment(COUNTER_KEY, by)?;
    Ok(Response::json(200, &json!({ "value": value })))
}
