//! Background work, the entry point beside `api`: it wakes plugins for
//! what is due — event deliveries and schedule runs — through the runtime,
//! as `api` does for HTTP requests. Services below never call up into the
//! runtime; they write delivery rows, and the jobs here take it from there.

pub mod delivery;
pub mod outbox;
pub mod scheduler;

use std::sync::Arc;

use crate::app::App;

/// Starts event delivery, outbox delivery and the scheduler (with the
/// pruning of old deliveries) for a serving process.
pub fn spawn(app: &Arc<App>) {
    delivery::spawn(app);
    outbox::spawn(app);
    scheduler::Scheduler::spawn(app);
    spawn_hold_sweeper(app);
    spawn_billing(app);
}

/// Every hour: today's storage sample of every tenant, and last month's
/// invoices once the month is over (each made once: the stored invoice is
/// the claim, so replicas may all run this).
fn spawn_billing(app: &Arc<App>) {
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3_600));
        loop {
            tick.tick().await;
            if let Err(err) = app.billing.sample_storage().await {
                tracing::warn!(%err, "storage sampling failed");
            }
            match app.billing.invoice_last_month(crate::ids::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(invoices = n, "monthly invoices made"),
                Err(err) => tracing::warn!(%err, "monthly invoicing failed"),
            }
        }
    });
}

/// Every minute, releases LLM credit holds a crash left unsettled, and
/// sends pending usage reports to Stripe (when Stripe is configured).
fn spawn_hold_sweeper(app: &Arc<App>) {
    let app = app.clone();
    tokio::spawn(async move {
        let age = std::time::Duration::from_secs(app.config.billing.stale_hold_secs.max(60));
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if !app.config.billing.stripe.secret_key.is_empty()
                && let Err(err) = app.billing.send_meter_reports().await
            {
                tracing::warn!(%err, "sending usage to Stripe failed");
            }
            match app.llm.release_stale_holds(age).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(holds = n, "released stale LLM credit holds"),
                Err(err) => tracing::warn!(%err, "releasing stale LLM credit holds failed"),
            }
        }
    });
}
