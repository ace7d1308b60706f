//! Calls to Stripe's API: customers, Checkout Sessions, billing meter events.
//!
//! Every call is built with async-stripe's typed request builders and sent
//! through its client, so the form encoding, the `Stripe-Version` header,
//! authentication and Stripe's error bodies are all async-stripe's; this
//! module only chooses the parameters and the idempotency key.

use std::collections::HashMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionSubscriptionData, ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;

use crate::{Error, Result};

/// Stripe's own API host, for [`StripeClient::new`] outside tests.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// How long one attempt may take before it counts as a transport error. A
/// hung Stripe must not hold a tenant's request (or a usage flush) forever;
/// the caller retries with the same idempotency key.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Stripe API client bound to one secret key and one base URL.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone, Debug)]
pub struct StripeClient {
    inner: stripe::Client,
}

/// What a Checkout Session sells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A one-off payment (a credit top-up, say), priced inline with
    /// `price_data` so no Price object has to exist in Stripe first.
    Payment {
        /// The amount in the currency's minor unit (cents for `usd`).
        amount_minor: i64,
        /// The ISO currency code, lower case (`usd`, `eur`).
        currency: String,
        /// What the customer sees on the Checkout page.
        product_name: String,
    },
    /// A subscription to an existing recurring Price.
    Subscription {
        /// The Price's id (`price_...`).
        price: String,
    },
}

/// The parameters of a hosted Checkout Session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The Stripe customer who pays (`cus_...`).
    pub customer: String,
    /// What is sold.
    pub mode: CheckoutMode,
    /// Where Stripe sends the customer after paying. Stripe replaces
    /// `{CHECKOUT_SESSION_ID}` in it with the session's id.
    pub success_url: String,
    /// Where Stripe sends the customer who backs out.
    pub cancel_url: String,
    /// Set on the session, and copied onto the subscription (subscription
    /// mode) or the payment intent (payment mode) so later events about
    /// those objects carry it too.
    pub metadata: Vec<(String, String)>,
    /// Our own reference, echoed back in `checkout.session.completed`.
    pub client_reference_id: Option<String>,
}

/// A created Checkout Session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// The session's id (`cs_...`).
    pub id: String,
    /// The hosted Checkout page to send the customer to.
    pub url: String,
}

impl StripeClient {
    /// A client for the API at `base_url` (normally [`STRIPE_API_BASE`]; a
    /// [`crate::fake::FakeStripe`]'s `base_url()` in tests), authenticating
    /// with `secret_key`.
    ///
    /// TLS is rustls with ring, configured from rustls' process-wide
    /// provider: the host installs ring at start-up. Without an installed
    /// provider rustls picks the one compiled in, and panics here if the
    /// build has compiled in more than one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the URL does not parse or the key is not a
    /// usable header value.
    pub fn new(secret_key: &str, base_url: &str) -> Result<Self> {
        // async-stripe appends `v1/...` directly to the base, so it must end
        // in a slash.
        let mut base = base_url.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let inner = stripe::ClientBuilder::new(secret_key)
            .url(base)
            .timeout(ATTEMPT_TIMEOUT)
            .app_info("weft", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            // async-stripe's own message here never quotes the key, but this
            // is the one place a key is handled, so say nothing about it.
            .map_err(|_| {
                Error::InvalidInput("unusable Stripe base URL or secret key".to_owned())
            })?;
        Ok(Self { inner })
    }

    /// Creates a customer and returns its id (`cus_...`).
    ///
    /// Retrying with the same `idempotency_key` and the same arguments
    /// returns the same customer instead of creating another.
    ///
    /// # Errors
    /// [`Error::Api`] for Stripe's refusals, [`Error::Transport`] when Stripe
    /// could not be reached, [`Error::InvalidInput`] for an empty or
    /// over-long idempotency key.
    pub async fn create_customer<K, V>(
        &self,
        name: &str,
        email: Option<&str>,
        metadata: &[(K, V)],
        idempotency_key: &str,
    ) -> Result<String>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut request = CreateCustomer::new().name(name);
        if let Some(email) = email {
            request = request.email(email);
        }
        if !metadata.is_empty() {
            request = request.metadata(to_map(metadata));
        }
        let customer = request
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.inner)
            .await?;
        Ok(customer.id.as_str().to_owned())
    }

    /// Creates a hosted Checkout Session for `request.customer`.
    ///
    /// # Errors
    /// As [`StripeClient::create_customer`]; [`Error::Decode`] if Stripe's
    /// session has no hosted URL.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<CheckoutSession> {
        let metadata = to_map(&request.metadata);
        let mut create = CreateCheckoutSession::new()
            .customer(request.customer.as_str())
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str());
        if !metadata.is_empty() {
            create = create.metadata(metadata.clone());
        }
        if let Some(reference) = &request.client_reference_id {
            create = create.client_reference_id(reference.as_str());
        }
        let mut item = CreateCheckoutSessionLineItems::new();
        item.quantity = Some(1);
        create = match &request.mode {
            CheckoutMode::Payment {
                amount_minor,
                currency,
                product_name,
            } => {
                let currency: stripe_types::Currency = currency
                    .to_ascii_lowercase()
                    .parse()
                    .unwrap_or_else(|never: std::convert::Infallible| match never {});
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
                price.unit_amount = Some(*amount_minor);
                price.product_data = Some(ProductData::new(product_name.as_str()));
                item.price_data = Some(price);
                let mut intent = CreateCheckoutSessionPaymentIntentData::new();
                if !metadata.is_empty() {
                    intent.metadata = Some(metadata);
                }
                create
                    .mode(CheckoutSessionMode::Payment)
                    .payment_intent_data(intent)
            }
            CheckoutMode::Subscription { price } => {
                item.price = Some(price.clone());
                let mut subscription = CreateCheckoutSessionSubscriptionData::new();
                if !metadata.is_empty() {
                    subscription.metadata = Some(metadata);
                }
                create
                    .mode(CheckoutSessionMode::Subscription)
                    .subscription_data(subscription)
            }
        };
        let session = create
            .line_items(vec![item])
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.inner)
            .await?;
        let url = session
            .url
            .ok_or_else(|| Error::Decode("checkout session has no hosted url".to_owned()))?;
        Ok(CheckoutSession {
            id: session.id.as_str().to_owned(),
            url,
        })
    }

    /// Reports `value` units of usage for `stripe_customer_id` on the meter
    /// whose event name is `event_name`, at unix time `timestamp`.
    ///
    /// `identifier` names the billable fact. Stripe keeps one event per
    /// identifier (for at least 24 hours) and refuses a second; that refusal
    /// means the usage is already recorded, so it is returned as `Ok`. A
    /// caller can therefore retry freely without billing twice. The
    /// idempotency key is derived from all the arguments, so an exact retry
    /// is also answered from Stripe's idempotency cache.
    ///
    /// # Errors
    /// As [`StripeClient::create_customer`], except that a duplicate
    /// identifier is not an error.
    pub async fn send_meter_event(
        &self,
        event_name: &str,
        stripe_customer_id: &str,
        value: i64,
        identifier: &str,
        timestamp: i64,
    ) -> Result<()> {
        let payload = HashMap::from([
            (
                "stripe_customer_id".to_owned(),
                stripe_customer_id.to_owned(),
            ),
            ("value".to_owned(), value.to_string()),
        ]);
        let key = meter_event_key(event_name, stripe_customer_id, value, identifier, timestamp);
        let sent = CreateBillingMeterEvent::new(event_name, payload)
            .identifier(identifier)
            .timestamp(timestamp)
            .customize()
            .request_strategy(idempotent(&key)?)
            .send(&self.inner)
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = Error::from(err);
                if is_duplicate_meter_event(&err) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy> {
    let key = IdempotencyKey::new(key).map_err(|err| Error::InvalidInput(err.to_string()))?;
    Ok(RequestStrategy::Idempotent(key))
}

fn to_map<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect()
}

/// An idempotency key that is the same exactly when every argument is: a
/// retry replays Stripe's first answer, while a second report under the same
/// identifier with other values reaches Stripe's identifier check (and is
/// refused there as a duplicate) instead of failing as a key reused with
/// different parameters.
fn meter_event_key(
    event_name: &str,
    customer: &str,
    value: i64,
    identifier: &str,
    timestamp: i64,
) -> String {
    let mut hash = Sha256::new();
    // Length-prefixed, so no two argument lists hash the same bytes.
    for part in [event_name, customer, identifier] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.update(value.to_be_bytes());
    hash.update(timestamp.to_be_bytes());
    format!("weft-meter-{}", hex::encode(hash.finalize()))
}

/// Stripe refuses a meter event whose identifier it already holds with a 400
/// `invalid_request_error` ("An event already exists with identifier ...")
/// and, as of this writing, no dedicated `code`; the message is the only
/// signal, so match it, and a code should Stripe add one.
pub(crate) fn is_duplicate_meter_event(err: &Error) -> bool {
    match err {
        Error::Api {
            status: 400,
            kind,
            code,
            message,
        } => {
            kind == "invalid_request_error"
                && (code.as_deref() == Some("duplicate_meter_event")
                    || message.contains("already exists with identifier"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_event_keys_differ_with_any_argument() {
        let base = meter_event_key("tokens", "cus_1", 5, "id-1", 100);
        assert_eq!(base, meter_event_key("tokens", "cus_1", 5, "id-1", 100));
        assert!(base.len() <= 255);
        for other in [
            meter_event_key("tokens", "cus_1", 6, "id-1", 100),
            meter_event_key("tokens", "cus_1", 5, "id-1", 101),
            meter_event_key("tokens", "cus_1", 5, "id-2", 100),
            meter_event_key("token", "scus_1", 5, "id-1", 100),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn only_the_duplicate_identifier_refusal_counts_as_recorded() {
        let duplicate = Error::Api {
            status: 400,
            kind: "invalid_request_error".into(),
            code: None,
            message: "An event already exists with identifier req_1.".into(),
        };
        assert!(is_duplicate_meter_event(&duplicate));
        let missing = Error::Api {
            status: 400,
            kind: "invalid_request_error".into(),
            code: Some("parameter_missing".into()),
            message: "Missing required param: event_name.".into(),
        };
        assert!(!is_duplicate_meter_event(&missing));
        assert!(!is_duplicate_meter_event(&Error::Transport("reset".into())));
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let client = StripeClient::new("sk_test_secret", STRIPE_API_BASE).expect("builds");
        assert!(!format!("{client:?}").contains("sk_test_secret"));
    }

    #[test]
    fn a_bad_base_url_is_refused_without_quoting_the_key() {
        let err = StripeClient::new("sk_test_secret", "not a url").expect_err("bad url");
        assert!(matches!(err, Error::InvalidInput(_)));
        assert!(!err.to_string().contains("sk_test_secret"));
    }
}
