//! `legacy4`: a plugin of the fourth WIT release, `weft:platform@0.4.0`,
//! written without the SDK. `POST /count` increments a kv counter and asks
//! the outbox (the interface 0.4.0 added) for a message it never sent,
//! answering `{"count": n, "status": "none"}`.

// Raw wit-bindgen output (the bindings and the export macro) is ABI glue
// made of unsafe code; the SDK hides it, this plugin on purpose does not.
#![allow(unsafe_code)]

// Its lowering functions take one argument per flattened field of a record.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../../wit/platform@0.4.0",
    });
}

use bindings::weft::platform::types::{
    Event, HandlerError, Method, Request, Response, ScheduleRun,
};
use bindings::weft::platform::{kv, outbox};

struct Legacy4;

fn json(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

impl bindings::Guest for Legacy4 {
    fn handle(req: Request) -> Response {
        match (req.method, req.path.as_str()) {
            (Method::Post, "/count") => {
                let status = match outbox::status("msg-never-sent") {
                    None => "none".to_owned(),
                    Some(s) => format!("{s:?}"),
                };
                match kv::increment("count", 1) {
                    Ok(n) => json(200, format!(r#"{{"count":{n},"status":"{status}"}}"#)),
                    Err(e) => json(500, format!(r#"{{"error":"{e:?}"}}"#)),
                }
            }
            _ => json(404, r#"{"error":"no route"}"#.into()),
        }
    }

    fn on_event(_event: Event) -> Result<(), HandlerError> {
        Ok(())
    }

    fn on_schedule(_run: ScheduleRun) -> Result<(), HandlerError> {
        Ok(())
    }
}

bindings::export!(Legacy4 with_types_in bindings);
