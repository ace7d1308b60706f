//! Stripe billing for Weft.
//!
//! - [`StripeClient`] creates customers and Checkout Sessions and reports
//!   usage as billing meter events, through async-stripe.
//! - [`verify_webhook`] checks a webhook's `Stripe-Signature` and parses the
//!   event; [`WebhookEvent`]'s accessors read the few event kinds billing
//!   acts on.
//! - [`fake::FakeStripe`] is an in-process Stripe that speaks the same
//!   subset over HTTP on loopback, for the host's tests and benchmarks
//!   (Stripe itself is unreachable from them).

// Stripe objects have many fields; `json!` recurses once per field.
#![recursion_limit = "256"]
#![warn(missing_docs)]

mod client;
mod error;
pub mod fake;
mod webhook;

pub use client::{CheckoutMode, CheckoutRequest, CheckoutSession, STRIPE_API_BASE, StripeClient};
pub use error::{Error, Result};
pub use webhook::{
    CheckoutCompleted, DEFAULT_TOLERANCE_SECS, InvoiceEvent, SubscriptionChange,
    SubscriptionStatus, WebhookError, WebhookEvent, verify_webhook,
};
