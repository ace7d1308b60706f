//! The trait a plugin implements, and the glue [`plugin!`](crate::plugin)
//! expands to.

use crate::{Request, Response, bindings};

/// A Weft plugin: answers the HTTP requests the host routes to it.
///
/// The host makes a fresh instance for every call, so there is no `self`:
/// anything that must outlive a request goes through [`kv`](crate::kv) or
/// [`docs`](crate::docs).
pub trait Plugin {
    /// Handles one request to a route the manifest declares.
    fn handle(req: Request) -> Response;
}

/// Converts between the raw bindings and the SDK's types around
/// [`Plugin::handle`]; called by the code [`plugin!`](crate::plugin) expands
/// to.
pub fn handle<P: Plugin>(req: bindings::Request) -> bindings::Response {
    P::handle(Request::from(req)).into()
}
