//! The trait a plugin implements, and the glue [`plugin!`](crate::plugin)
//! expands to.

use crate::{Event, HandlerError, Request, Response, ScheduleRun, bindings};

/// A Weft plugin: answers the HTTP requests the host routes to it.
///
/// The host makes a fresh instance for every call, so there is no `self`:
/// anything that must outlive a request goes through [`kv`](crate::kv) or
/// [`docs`](crate::docs).
pub trait Plugin {
    /// Handles one request to a route the manifest declares.
    fn handle(req: Request) -> Response;

    /// Handles one delivery of an event whose topic the manifest lists under
    /// `[[subscriptions]]`. Its writes commit together with the mark that
    /// the delivery is done, only if it returns `Ok`: a redelivery (after
    /// `Err(HandlerError::Retry)`, a trap or a crash) never applies them
    /// twice. The default accepts and ignores the event.
    fn on_event(event: Event) -> Result<(), HandlerError> {
        let _ = event;
        Ok(())
    }

    /// Handles one due run of a schedule the manifest lists under
    /// `[[schedules]]`; atomic and retried like [`Plugin::on_event`]. The
    /// default does nothing.
    fn on_schedule(run: ScheduleRun) -> Result<(), HandlerError> {
        let _ = run;
        Ok(())
    }
}

/// Converts between the raw bindings and the SDK's types around
/// [`Plugin::handle`]; called by the code [`plugin!`](crate::plugin) expands
/// to.
pub fn handle<P: Plugin>(req: bindings::Request) -> bindings::Response {
    P::handle(Request::from(req)).into()
}
