//! `legacy`: a plugin of the first WIT release, `weft:platform@0.1.0`,
//! written without the SDK. `POST /count` increments a kv counter and
//! answers `{"count": n, "caller": name}`.

// Raw wit-bindgen output (the bindings and the export macro) is ABI glue
// made of unsafe code; the SDK hides it, this plugin on purpose does not.
#![allow(unsafe_code)]

mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../../wit/platform@0.1.0",
    });
}

use bindings::weft::platform::kv;
use bindings::weft::platform::types::{Request, Response};

struct Legacy;

impl bindings::Guest for Legacy {
    fn handle(req: Request) -> Response {
        let caller = req.caller.map(|c| c.name).unwrap_or_default();
        let (status, body) = match kv::increment("count", 1) {
            Ok(n) => (200, format!(r#"{{"count":{n},"caller":"{caller}"}}"#)),
            Err(e) => (500, format!(r#"{{"error":"{e:?}"}}"#)),
        };
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }
}

bindings::export!(Legacy with_types_in bindings);
