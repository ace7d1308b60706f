//! An in-process fake Stripe for the host's integration tests and
//! benchmarks, which cannot reach Stripe.
//!
//! [`FakeStripe::start`] serves, on `127.0.0.1` at a port the OS picks, the
//! subset of Stripe's API that [`crate::StripeClient`] uses, the way Stripe
//! answers it:
//!
//! - `POST /v1/customers`, `GET /v1/customers/{id}`
//! - `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`
//! - `POST /v1/billing/meter_events`
//! - `GET /v1/subscriptions/{id}` (subscriptions come from
//!   [`FakeStripe::complete_checkout`] and [`FakeStripe::subscription_event`])
//! - `GET /c/pay/{id}`: a stand-in for the hosted Checkout page each
//!   session's `url` points at.
//!
//! Like Stripe it reads form-encoded bodies with bracketed keys, requires
//! `Authorization: Bearer <secret key>` (else 401 with Stripe's error body),
//! honours `Idempotency-Key` (the same key with the same parameters replays
//! the first answer with `Idempotent-Replayed: true`; with other parameters
//! it is a 400 `idempotency_error`; only successful answers are kept, as
//! Stripe keeps no result for a request that failed validation), refuses a
//! second meter event with an identifier it has seen, and refuses meter
//! event timestamps outside Stripe's window (35 days back, 5 minutes ahead).
//! Objects carry Stripe's id prefixes, `object`, `created` and every field
//! of the API version async-stripe pins.
//!
//! What happens on Stripe's side after a customer pays is driven by the
//! test: [`FakeStripe::complete_checkout`], [`FakeStripe::subscription_event`]
//! and [`FakeStripe::invoice_paid`] change the fake's state and return the
//! webhook event Stripe would send, signed with the webhook secret, ready to
//! [`SignedEvent::deliver`].

mod api;
mod form;
mod objects;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::{Error, Result};

/// A running fake Stripe. Cheap to clone; the server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct FakeStripe {
    base_url: String,
    webhook_secret: Arc<str>,
    state: Arc<Mutex<State>>,
    _server: Arc<ServerTask>,
}

impl std::fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets stay out of test output.
        f.debug_struct("FakeStripe")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One API request the fake received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, e.g. `/v1/customers`.
    pub path: String,
    /// The decoded form body (POST) or query string (GET), keys as sent
    /// (`line_items[0][price_data][currency]`), in order.
    pub form: Vec<(String, String)>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
}

impl RecordedRequest {
    /// The value of form field `key`, if sent.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A meter event the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterEvent {
    /// The meter's event name.
    pub event_name: String,
    /// `payload[stripe_customer_id]`.
    pub customer: String,
    /// `payload[value]`.
    pub value: i64,
    /// The event's identifier (generated when the request had none).
    pub identifier: String,
    /// When the usage happened (unix seconds).
    pub timestamp: i64,
}

/// A customer as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCustomer {
    /// `cus_...`.
    pub id: String,
    /// The customer's name.
    pub name: Option<String>,
    /// The customer's email.
    pub email: Option<String>,
    /// The customer's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A Price for the fake's catalog (see [`FakeStripe::add_price`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakePrice {
    /// `price_...`.
    pub id: String,
    /// The price's lookup key.
    pub lookup_key: Option<String>,
    /// Per unit, in minor units.
    pub unit_amount: i64,
    /// Lower-case ISO currency.
    pub currency: String,
    /// `day`, `week`, `month` or `year`; `None` for a one-time price.
    pub interval: Option<String>,
}

/// A webhook event as Stripe would post it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEvent {
    /// The event's id (`evt_...`).
    pub id: String,
    /// The exact bytes to post (the signature covers them).
    pub payload: Vec<u8>,
    /// The `Stripe-Signature` header value.
    pub header: String,
}

impl SignedEvent {
    /// Posts the event to `url` the way Stripe does (`Stripe-Signature`,
    /// `Content-Type: application/json; charset=utf-8`) and returns the
    /// receiver's status code. Plain HTTP only: receivers in tests listen on
    /// loopback.
    ///
    /// # Errors
    /// [`Error::Transport`] when the receiver cannot be reached.
    pub async fn deliver(&self, url: &str) -> Result<u16> {
        let client = delivery_client()?;
        let response = client
            .post(url)
            .header("stripe-signature", &self.header)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(
                reqwest::header::USER_AGENT,
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(self.payload.clone())
            .send()
            .await
            .map_err(|err| Error::Transport(err.to_string()))?;
        Ok(response.status().as_u16())
    }
}

fn delivery_client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                // Tests each run their own tokio runtime; a pooled
                // connection would outlive the runtime that owns it.
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|err| Error::Transport(err.clone()))
}

/// Stops the server when dropped.
struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeStripe {
    /// Starts a fake on `127.0.0.1` at a free port, accepting `secret_key`
    /// and signing events with `webhook_secret`. Must be called inside a
    /// tokio runtime, which then runs the server.
    ///
    /// # Errors
    /// [`Error::Transport`] if no port can be bound.
    pub async fn start(secret_key: &str, webhook_secret: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|err| Error::Transport(format!("binding the fake Stripe: {err}")))?;
        let addr = listener
            .local_addr()
            .map_err(|err| Error::Transport(format!("binding the fake Stripe: {err}")))?;
        let base_url = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State::new(secret_key, &base_url)));
        let app = axum::Router::new()
            .fallback(api::handle)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            // Serving only ends when the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url,
            webhook_secret: webhook_secret.into(),
            state,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// `http://127.0.0.1:<port>`: the base URL for [`crate::StripeClient::new`].
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The secret the fake signs events with.
    pub fn webhook_secret(&self) -> &str {
        &self.webhook_secret
    }

    /// Every API request received so far, in order, replays and refusals
    /// included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The meter events accepted so far, in order.
    pub fn meter_events(&self) -> Vec<MeterEvent> {
        self.lock().meter_events.clone()
    }

    /// The customers created so far, in order.
    pub fn customers(&self) -> Vec<FakeCustomer> {
        self.lock().customers.iter().map(fake_customer).collect()
    }

    /// The stored object with this id (a customer, Checkout Session or
    /// subscription) as the API would return it.
    pub fn object(&self, id: &str) -> Option<Value> {
        let state = self.lock();
        state.find(id).cloned()
    }

    /// Adds a Price to the catalog. Sessions may also name prices the fake
    /// has never heard of (it does not know your Stripe account): those are
    /// taken as monthly `usd` prices of no fixed amount and no lookup key.
    pub fn add_price(&self, price: FakePrice) {
        let mut state = self.lock();
        let product = state.new_id("prod_", 14);
        let object = objects::price(objects::PriceFields {
            id: &price.id,
            product: &product,
            created: now(),
            currency: &price.currency,
            unit_amount: Some(price.unit_amount),
            lookup_key: price.lookup_key.as_deref(),
            interval: price.interval.as_deref(),
            nickname: None,
        });
        state.prices.insert(price.id, object);
    }

    /// Completes a Checkout Session as if the customer had paid: the session
    /// becomes `complete`/`paid`; in subscription mode an `active`
    /// subscription (`sub_...`, carrying `subscription_data[metadata]`) and
    /// its first invoice id are created; in payment mode a payment intent id.
    /// Returns the `checkout.session.completed` event.
    ///
    /// # Errors
    /// [`Error::Api`] 404 for an unknown session, 400 for one that is no
    /// longer open.
    pub fn complete_checkout(&self, session_id: &str) -> Result<SignedEvent> {
        let mut state = self.lock();
        let now = now();
        let Some(session) = state.sessions.get(session_id) else {
            return Err(Error::Api {
                status: 404,
                kind: "invalid_request_error".into(),
                code: Some("resource_missing".into()),
                message: format!("No such checkout.session: '{session_id}'"),
            });
        };
        if session.object.get("status").and_then(Value::as_str) != Some("open") {
            return Err(Error::Api {
                status: 400,
                kind: "invalid_request_error".into(),
                code: None,
                message: "This Checkout Session is no longer active.".into(),
            });
        }
        let mode = session
            .object
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let customer = session
            .object
            .get("customer")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let items = session.items.clone();
        let subscription_metadata = session.subscription_metadata.clone();
        let details = {
            let record = customer.as_deref().and_then(|id| state.customer(id));
            let text = |key: &str| record.and_then(|c| c.get(key)).and_then(Value::as_str);
            objects::customer_details(text("name"), text("email"))
        };

        let mut updates = Map::new();
        updates.insert("status".into(), "complete".into());
        updates.insert("payment_status".into(), "paid".into());
        updates.insert("customer_details".into(), details);
        match (mode.as_str(), customer.as_deref()) {
            ("subscription", Some(customer)) => {
                let (subscription, invoice) =
                    state.subscribe(customer, &items, subscription_metadata, now);
                updates.insert("subscription".into(), subscription.into());
                updates.insert("invoice".into(), invoice.into());
            }
            ("payment", _) => {
                updates.insert("payment_intent".into(), state.new_id("pi_", 24).into());
            }
            _ => {}
        }
        let Some(session) = state.sessions.get_mut(session_id) else {
            return Err(Error::Decode("checkout session vanished".into()));
        };
        if let Value::Object(object) = &mut session.object {
            object.extend(updates);
        }
        let object = session.object.clone();
        Ok(self.signed_event(&mut state, "checkout.session.completed", object, None, now))
    }

    /// Sets subscription `subscription_id` (creating it if new) to one item
    /// of `price` (with `lookup_key`), `status` and `current_period_end`,
    /// and returns the `customer.subscription.<kind>` event (`kind` is
    /// `created`, `updated`, `deleted`, or any other Stripe suffix such as
    /// `paused`). An `updated` event lists the changed fields' old values in
    /// `data.previous_attributes`, as Stripe does.
    #[allow(clippy::too_many_arguments)]
    pub fn subscription_event(
        &self,
        kind: &str,
        subscription_id: &str,
        customer: &str,
        price: &str,
        lookup_key: Option<&str>,
        status: &str,
        current_period_end: i64,
    ) -> SignedEvent {
        let mut state = self.lock();
        let now = now();
        let mut price_object = state.price_object(price, now);
        if let Value::Object(map) = &mut price_object {
            map.insert("lookup_key".into(), lookup_key.into());
        }
        let currency = price_object
            .get("currency")
            .and_then(Value::as_str)
            .unwrap_or("usd")
            .to_owned();
        let old = state.subscriptions.get(subscription_id).cloned();
        let old_field = |key: &str| old.as_ref().and_then(|o| o.get(key)).cloned();
        let old_item = old
            .as_ref()
            .and_then(|o| o.pointer("/items/data/0"))
            .cloned();
        let item_id = match old_item
            .as_ref()
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
        {
            Some(id) => id.to_owned(),
            None => state.new_id("si_", 14),
        };
        let created = old_field("created").and_then(|v| v.as_i64()).unwrap_or(now);
        let item = objects::subscription_item(objects::ItemFields {
            id: &item_id,
            subscription: subscription_id,
            created,
            price: price_object,
            quantity: 1,
            period_start: now.min(current_period_end),
            period_end: current_period_end,
        });
        let latest_invoice = old_field("latest_invoice");
        let mut object = objects::subscription(objects::SubscriptionFields {
            id: subscription_id,
            customer,
            created,
            currency: &currency,
            status,
            items: vec![item],
            metadata: old_field("metadata").unwrap_or_else(|| Value::Object(Map::new())),
            latest_invoice: latest_invoice.as_ref().and_then(Value::as_str),
        });
        if let Value::Object(map) = &mut object {
            if let Some(cancel) = old_field("cancel_at_period_end") {
                map.insert("cancel_at_period_end".into(), cancel);
            }
            if status == "canceled" || kind == "deleted" {
                let ended = old_field("ended_at")
                    .filter(|v| !v.is_null())
                    .unwrap_or(now.into());
                map.insert("canceled_at".into(), ended.clone());
                map.insert("ended_at".into(), ended);
            }
        }
        let previous = match (&old, kind) {
            (Some(Value::Object(old)), "updated") => Some(Value::Object(
                old.iter()
                    .filter(|(k, v)| object.get(k.as_str()) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )),
            _ => None,
        };
        state
            .subscriptions
            .insert(subscription_id.to_owned(), object.clone());
        let kind = format!("customer.subscription.{kind}");
        self.signed_event(&mut state, &kind, object, previous, now)
    }

    /// An `invoice.paid` event: subscription `subscription_id`'s invoice of
    /// `amount_paid` for the period ending at `period_end`.
    pub fn invoice_paid(
        &self,
        subscription_id: &str,
        customer: &str,
        amount_paid: i64,
        currency: &str,
        period_end: i64,
    ) -> SignedEvent {
        self.invoice_event(
            true,
            subscription_id,
            customer,
            amount_paid,
            currency,
            period_end,
        )
    }

    /// An `invoice.payment_failed` event: the same invoice, `open`, with
    /// `amount_due` unpaid.
    pub fn invoice_payment_failed(
        &self,
        subscription_id: &str,
        customer: &str,
        amount_due: i64,
        currency: &str,
        period_end: i64,
    ) -> SignedEvent {
        self.invoice_event(
            false,
            subscription_id,
            customer,
            amount_due,
            currency,
            period_end,
        )
    }

    fn invoice_event(
        &self,
        paid: bool,
        subscription_id: &str,
        customer: &str,
        amount: i64,
        currency: &str,
        period_end: i64,
    ) -> SignedEvent {
        let mut state = self.lock();
        let now = now();
        let id = state.new_id("in_", 24);
        let period_start = state
            .subscriptions
            .get(subscription_id)
            .and_then(|s| s.pointer("/items/data/0/current_period_start"))
            .and_then(Value::as_i64)
            .filter(|start| *start <= period_end)
            .unwrap_or(period_end);
        let object = objects::invoice(objects::InvoiceFields {
            id: &id,
            customer,
            subscription: subscription_id,
            created: now,
            currency,
            amount_due: amount,
            paid,
            period_start,
            period_end,
            base_url: &state.base_url,
        });
        let kind = if paid {
            "invoice.paid"
        } else {
            "invoice.payment_failed"
        };
        self.signed_event(&mut state, kind, object, None, now)
    }

    /// The `Stripe-Signature` header value for `payload` signed at unix time
    /// `t` with the webhook secret (for hand-made or stale deliveries).
    pub fn sign(&self, payload: &[u8], t: i64) -> String {
        crate::webhook::signature_header(&self.webhook_secret, payload, t)
    }

    fn signed_event(
        &self,
        state: &mut State,
        kind: &str,
        object: Value,
        previous: Option<Value>,
        now: i64,
    ) -> SignedEvent {
        let id = state.new_id("evt_", 24);
        let envelope = objects::event(&id, kind, now, object, previous);
        // Stripe posts pretty-printed JSON; a receiver that re-serializes
        // before verifying breaks here as it would in production.
        let payload = serde_json::to_vec_pretty(&envelope).unwrap_or_default();
        let header = self.sign(&payload, now);
        SignedEvent {
            id,
            payload,
            header,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the
        // state from the assertions of the others.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn fake_customer(object: &Value) -> FakeCustomer {
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    FakeCustomer {
        id: text("id").unwrap_or_default(),
        name: text("name"),
        email: text("email"),
        metadata: object
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A Checkout Session and what the fake needs to complete it.
struct Session {
    object: Value,
    /// Each line item's price object and quantity.
    items: Vec<(Value, u64)>,
    /// `subscription_data[metadata]`, for the subscription it creates.
    subscription_metadata: Value,
}

/// A successful answer kept for an idempotency key.
struct Stored {
    /// Method, path and the sorted parameters: Stripe compares parameters,
    /// not bytes, so field order does not matter.
    fingerprint: (String, String, Vec<(String, String)>),
    status: u16,
    body: Value,
}

struct State {
    secret_key: String,
    base_url: String,
    ids: std::collections::hash_map::RandomState,
    counter: u64,
    requests: Vec<RecordedRequest>,
    idempotent: HashMap<String, Stored>,
    customers: Vec<Value>,
    sessions: HashMap<String, Session>,
    subscriptions: HashMap<String, Value>,
    prices: HashMap<String, Value>,
    meter_events: Vec<MeterEvent>,
    meter_identifiers: HashSet<String>,
}

impl State {
    fn new(secret_key: &str, base_url: &str) -> Self {
        Self {
            secret_key: secret_key.to_owned(),
            base_url: base_url.to_owned(),
            ids: std::collections::hash_map::RandomState::new(),
            counter: 0,
            requests: Vec::new(),
            idempotent: HashMap::new(),
            customers: Vec::new(),
            sessions: HashMap::new(),
            subscriptions: HashMap::new(),
            prices: HashMap::new(),
            meter_events: Vec::new(),
            meter_identifiers: HashSet::new(),
        }
    }

    /// `prefix` and `len` random alphanumerics, like Stripe's ids; random
    /// per fake so ids from two fakes (or two test runs) never collide.
    fn new_id(&mut self, prefix: &str, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut id = String::with_capacity(prefix.len() + len);
        id.push_str(prefix);
        while id.len() < prefix.len() + len {
            self.counter += 1;
            let mut hasher = self.ids.build_hasher();
            hasher.write_u64(self.counter);
            let mut bits = hasher.finish();
            for _ in 0..10 {
                id.push(char::from(ALPHABET[(bits % 62) as usize]));
                bits /= 62;
            }
        }
        id.truncate(prefix.len() + len);
        id
    }

    fn customer(&self, id: &str) -> Option<&Value> {
        self.customers
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
    }

    fn find(&self, id: &str) -> Option<&Value> {
        self.customer(id)
            .or_else(|| self.sessions.get(id).map(|s| &s.object))
            .or_else(|| self.subscriptions.get(id))
    }

    /// The catalog's price, or a stand-in for one the fake does not know.
    fn price_object(&mut self, id: &str, now: i64) -> Value {
        if let Some(price) = self.prices.get(id) {
            return price.clone();
        }
        let product = self.new_id("prod_", 14);
        objects::price(objects::PriceFields {
            id,
            product: &product,
            created: now,
            currency: "usd",
            unit_amount: None,
            lookup_key: None,
            interval: Some("month"),
            nickname: None,
        })
    }

    /// Creates the subscription a completed subscription-mode session
    /// starts, and its first invoice's id.
    fn subscribe(
        &mut self,
        customer: &str,
        items: &[(Value, u64)],
        metadata: Value,
        now: i64,
    ) -> (String, String) {
        let id = self.new_id("sub_", 24);
        let invoice = self.new_id("in_", 24);
        let mut currency = "usd".to_owned();
        let mut subscription_items = Vec::new();
        for (price, quantity) in items {
            if price.get("type").and_then(Value::as_str) != Some("recurring") {
                continue;
            }
            if let Some(c) = price.get("currency").and_then(Value::as_str) {
                c.clone_into(&mut currency);
            }
            let interval = price.pointer("/recurring/interval").and_then(Value::as_str);
            let item_id = self.new_id("si_", 14);
            subscription_items.push(objects::subscription_item(objects::ItemFields {
                id: &item_id,
                subscription: &id,
                created: now,
                price: price.clone(),
                quantity: *quantity,
                period_start: now,
                period_end: now.saturating_add(interval_secs(interval)),
            }));
        }
        let object = objects::subscription(objects::SubscriptionFields {
            id: &id,
            customer,
            created: now,
            currency: &currency,
            status: "active",
            items: subscription_items,
            metadata,
            latest_invoice: Some(&invoice),
        });
        self.subscriptions.insert(id.clone(), object);
        (id, invoice)
    }
}

/// The length of one billing interval, in seconds (months as 30 days).
fn interval_secs(interval: Option<&str>) -> i64 {
    const DAY: i64 = 24 * 3600;
    match interval {
        Some("day") => DAY,
        Some("week") => 7 * DAY,
        Some("year") => 365 * DAY,
        _ => 30 * DAY,
    }
}
