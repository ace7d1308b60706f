//! `legacy2`: a plugin of the second WIT release, `weft:platform@0.2.0`,
//! written without the SDK. `POST /ping` publishes `legacy2.ping`, which it
//! subscribes to itself; each delivery increments a kv counter, read with
//! `GET /count` as `{"count": n}`.

// Raw wit-bindgen output (the bindings and the export macro) is ABI glue
// made of unsafe code; the SDK hides it, this plugin on purpose does not.
#![allow(unsafe_code)]

// Its lowering functions take one argument per flattened field of a record.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../../wit/platform@0.2.0",
    });
}

use bindings::weft::platform::types::{
    Event, HandlerError, Method, Request, Response, ScheduleRun,
};
use bindings::weft::platform::{events, kv};

struct Legacy2;

fn json(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

impl bindings::Guest for Legacy2 {
    fn handle(req: Request) -> Response {
        match (req.method, req.path.as_str()) {
            (Method::Post, "/ping") => match events::publish("legacy2.ping", "{}") {
                Ok(id) => json(200, format!(r#"{{"id":"{id}"}}"#)),
                Err(e) => json(500, format!(r#"{{"error":"{e:?}"}}"#)),
            },
            (Method::Get, "/count") => match kv::get("count") {
                Ok(value) => {
                    let n = value
                        .and_then(|v| String::from_utf8(v).ok())
                        .unwrap_or_else(|| "0".into());
                    json(200, format!(r#"{{"count":{n}}}"#))
                }
                Err(e) => json(500, format!(r#"{{"error":"{e:?}"}}"#)),
            },
            _ => json(404, r#"{"error":"no route"}"#.into()),
        }
    }

    fn on_event(_event: Event) -> Result<(), HandlerError> {
        kv::increment("count", 1)
            .map(|_| ())
            .map_err(|e| HandlerError::Retry(format!("{e:?}")))
    }

    fn on_schedule(_run: ScheduleRun) -> Result<(), HandlerError> {
        Ok(())
    }
}

bindings::export!(Legacy2 with_types_in bindings);
