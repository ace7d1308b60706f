//! Background work, the entry point beside `api`: it wakes plugins for
//! what is due — event deliveries and schedule runs — through the runtime,
//! as `api` does for HTTP requests. Services below never call up into the
//! runtime; they write delivery rows, and the jobs here take it from there.

pub mod delivery;
pub mod scheduler;

use std::sync::Arc;

use crate::app::App;

/// Starts event delivery and the scheduler (with the pruning of old
/// deliveries) for a serving process.
pub fn spawn(app: &Arc<App>) {
    delivery::spawn(app);
    scheduler::Scheduler::spawn(app);
}
