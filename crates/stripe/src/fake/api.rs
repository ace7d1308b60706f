//! The fake's HTTP side: authentication, idempotency, recording, and the
//! endpoints. All of it runs under the state lock, so concurrent requests
//! see each other's effects in some order, as they would at Stripe.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{MeterEvent, RecordedRequest, Session, State, Stored, form, now, objects};

/// Stripe accepts meter events up to 35 days old and 5 minutes ahead.
const METER_PAST_SECS: i64 = 35 * 24 * 3600;
const METER_FUTURE_SECS: i64 = 5 * 60;

/// One answer: a status and a JSON body.
struct Reply {
    status: StatusCode,
    body: Value,
    replayed: bool,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            replayed: false,
        }
    }

    fn error(
        status: StatusCode,
        kind: &str,
        code: Option<&str>,
        param: Option<&str>,
        message: &str,
    ) -> Self {
        Self {
            status,
            body: objects::error(kind, code, param, message),
            replayed: false,
        }
    }

    fn invalid(param: Option<&str>, message: &str) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            param,
            message,
        )
    }

    fn missing(param: &str) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            Some(param),
            &format!("Missing required param: {param}."),
        )
    }

    fn no_such(object: &str, param: &str, id: &str) -> Self {
        let status = if param == "id" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::error(
            status,
            "invalid_request_error",
            Some("resource_missing"),
            Some(param),
            &format!("No such {object}: '{id}'"),
        )
    }

    fn into_response(self, request_id: &str) -> Response {
        let body = serde_json::to_vec_pretty(&self.body).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert("request-id", value);
        }
        headers.insert(
            "stripe-version",
            HeaderValue::from_static(objects::api_version()),
        );
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// Every request lands here; the fake routes by hand so that recording,
/// authentication and idempotency wrap every endpoint the same way.
pub(super) async fn handle(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = uri.path();
    if method == Method::GET
        && let Some(id) = path.strip_prefix("/c/pay/")
    {
        return checkout_page(&state, id);
    }
    let request_id = state.new_id("req_", 14);
    let raw = if method == Method::POST {
        &body[..]
    } else {
        uri.query().unwrap_or("").as_bytes()
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let pairs = form::pairs(raw);
    state.requests.push(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        form: pairs.clone().unwrap_or_default(),
        idempotency_key: idempotency_key.clone(),
    });
    if let Some(refusal) = authenticate(&state, &headers) {
        return refusal.into_response(&request_id);
    }
    let pairs = match pairs {
        Ok(pairs) => pairs,
        Err(message) => return Reply::invalid(None, &message).into_response(&request_id),
    };
    let params = match form::nest(&pairs) {
        Ok(params) => params,
        Err(message) => return Reply::invalid(None, &message).into_response(&request_id),
    };

    let keyed = if method == Method::POST {
        idempotency_key
    } else {
        None
    };
    let mut fingerprint = None;
    if let Some(key) = &keyed {
        let mut sorted = pairs;
        sorted.sort();
        let print = (method.as_str().to_owned(), path.to_owned(), sorted);
        if let Some(stored) = state.idempotent.get(key) {
            let reply = if stored.fingerprint == print {
                Reply {
                    status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                    body: stored.body.clone(),
                    replayed: true,
                }
            } else {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    None,
                    None,
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                )
            };
            return reply.into_response(&request_id);
        }
        fingerprint = Some(print);
    }

    let reply = route(&mut state, &method, path, &params);
    if let (Some(key), Some(fingerprint)) = (keyed, fingerprint)
        && reply.status.is_success()
    {
        state.idempotent.insert(
            key,
            Stored {
                fingerprint,
                status: reply.status.as_u16(),
                body: reply.body.clone(),
            },
        );
    }
    reply.into_response(&request_id)
}

fn authenticate(state: &State, headers: &HeaderMap) -> Option<Reply> {
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Some(Reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            None,
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    let presented = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(state.secret_key.as_str()) {
        return None;
    }
    // Stripe echoes a masked key; the fake echoes none at all.
    Some(Reply::error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        None,
        None,
        "Invalid API Key provided.",
    ))
}

fn route(state: &mut State, method: &Method, path: &str, params: &Map<String, Value>) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["customers"]) => create_customer(state, params),
        ("GET", ["customers", id]) => match state.customer(id) {
            Some(customer) => Reply::ok(customer.clone()),
            None => Reply::no_such("customer", "id", id),
        },
        ("POST", ["checkout", "sessions"]) => create_session(state, params),
        ("GET", ["checkout", "sessions", id]) => match state.sessions.get(*id) {
            Some(session) => Reply::ok(session.object.clone()),
            None => Reply::no_such("checkout.session", "id", id),
        },
        ("GET", ["subscriptions", id]) => match state.subscriptions.get(*id) {
            Some(subscription) => Reply::ok(subscription.clone()),
            None => Reply::no_such("subscription", "id", id),
        },
        ("POST", ["billing", "meter_events"]) => create_meter_event(state, params),
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            None,
            None,
            &format!("Unrecognized request URL ({method}: {path})."),
        ),
    }
}

fn text<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

/// `metadata[...]` as an object of strings (`metadata=` clears it).
fn metadata(params: &Map<String, Value>, param: &str) -> Result<Value, Reply> {
    match params.get(param) {
        None => Ok(Value::Object(Map::new())),
        Some(Value::String(s)) if s.is_empty() => Ok(Value::Object(Map::new())),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => {
            Ok(Value::Object(map.clone()))
        }
        Some(_) => Err(Reply::invalid(
            Some(param),
            &format!("Invalid object: {param} must be a hash of strings."),
        )),
    }
}

fn integer(value: Option<&Value>, param: &str) -> Result<Option<i64>, Reply> {
    match value {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| Reply::invalid(Some(param), &format!("Invalid integer: {param}."))),
    }
}

fn create_customer(state: &mut State, params: &Map<String, Value>) -> Reply {
    let metadata = match metadata(params, "metadata") {
        Ok(metadata) => metadata,
        Err(reply) => return reply,
    };
    let id = state.new_id("cus_", 14);
    let prefix = state.new_id("", 8).to_ascii_uppercase();
    let customer = objects::customer(objects::CustomerFields {
        id: &id,
        created: now(),
        name: text(params, "name"),
        email: text(params, "email"),
        description: text(params, "description"),
        phone: text(params, "phone"),
        metadata,
        invoice_prefix: &prefix,
    });
    state.customers.push(customer.clone());
    Reply::ok(customer)
}

fn create_session(state: &mut State, params: &Map<String, Value>) -> Reply {
    match build_session(state, params) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn build_session(state: &mut State, params: &Map<String, Value>) -> Result<Reply, Reply> {
    let mode = text(params, "mode").ok_or_else(|| Reply::missing("mode"))?;
    if !matches!(mode, "payment" | "subscription" | "setup") {
        return Err(Reply::invalid(
            Some("mode"),
            "Invalid mode: must be one of payment, setup, or subscription.",
        ));
    }
    let customer = text(params, "customer");
    if let Some(customer) = customer
        && state.customer(customer).is_none()
    {
        return Err(Reply::no_such("customer", "customer", customer));
    }
    let metadata = metadata(params, "metadata")?;
    let subscription_data = params.get("subscription_data").and_then(Value::as_object);
    let subscription_metadata = match subscription_data {
        Some(data) => metadata_of(data, "subscription_data[metadata]")?,
        None => Value::Object(Map::new()),
    };
    let now = now();

    let line_items = match params.get("line_items") {
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(Reply::invalid(
                Some("line_items"),
                "Invalid array: line_items.",
            ));
        }
        None if mode == "setup" => &[],
        None => return Err(Reply::missing("line_items")),
    };
    let mut items = Vec::with_capacity(line_items.len());
    let mut currency: Option<String> = None;
    let mut amount: i64 = 0;
    for (index, item) in line_items.iter().enumerate() {
        let param = |name: &str| format!("line_items[{index}][{name}]");
        let item = item
            .as_object()
            .ok_or_else(|| Reply::invalid(Some(&param("price")), "Invalid line item."))?;
        let quantity = match integer(item.get("quantity"), &param("quantity"))? {
            None => 1,
            Some(q) => u64::try_from(q).ok().filter(|q| *q > 0).ok_or_else(|| {
                Reply::invalid(Some(&param("quantity")), "Quantity must be positive.")
            })?,
        };
        let price = match (
            text(item, "price"),
            item.get("price_data").and_then(Value::as_object),
        ) {
            (Some(price), None) => state.price_object(price, now),
            (None, Some(data)) => inline_price(state, data, index, now)?,
            _ => {
                return Err(Reply::invalid(
                    Some(&param("price")),
                    "You must specify exactly one of `price` or `price_data` for each line item.",
                ));
            }
        };
        let recurring = price.get("type").and_then(Value::as_str) == Some("recurring");
        if mode == "payment" && recurring {
            return Err(Reply::invalid(
                Some(&param("price")),
                "You specified `payment` mode but passed a recurring price. Either switch to \
                 `subscription` mode or use only one-time prices.",
            ));
        }
        let price_currency = price
            .get("currency")
            .and_then(Value::as_str)
            .unwrap_or("usd");
        match &currency {
            Some(c) if c != price_currency => {
                return Err(Reply::invalid(
                    Some(&param("price")),
                    "All line items must use the same currency.",
                ));
            }
            _ => currency = Some(price_currency.to_owned()),
        }
        let unit = price
            .get("unit_amount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let quantity_i64 = i64::try_from(quantity).unwrap_or(i64::MAX);
        amount = amount.saturating_add(unit.saturating_mul(quantity_i64));
        items.push((price, quantity));
    }
    if mode == "subscription"
        && !items
            .iter()
            .any(|(p, _)| p.get("type").and_then(Value::as_str) == Some("recurring"))
    {
        return Err(Reply::invalid(
            Some("line_items"),
            "You must provide at least one recurring price in `subscription` mode when using prices.",
        ));
    }

    let id = state.new_id("cs_test_", 58);
    let url = format!("{}/c/pay/{id}", state.base_url);
    let object = objects::checkout_session(objects::SessionFields {
        id: &id,
        created: now,
        mode,
        customer,
        currency: currency.as_deref(),
        amount,
        success_url: text(params, "success_url"),
        cancel_url: text(params, "cancel_url"),
        client_reference_id: text(params, "client_reference_id"),
        metadata,
        url: &url,
    });
    state.sessions.insert(
        id,
        Session {
            object: object.clone(),
            items,
            subscription_metadata,
        },
    );
    Ok(Reply::ok(object))
}

fn metadata_of(data: &Map<String, Value>, param: &str) -> Result<Value, Reply> {
    let mut wrapper = Map::new();
    if let Some(metadata) = data.get("metadata") {
        wrapper.insert(param.to_owned(), metadata.clone());
    }
    metadata(&wrapper, param)
}

/// `line_items[i][price_data]`: a price made on the spot.
fn inline_price(
    state: &mut State,
    data: &Map<String, Value>,
    index: usize,
    now: i64,
) -> Result<Value, Reply> {
    let param = |name: &str| format!("line_items[{index}][price_data][{name}]");
    let currency = text(data, "currency").ok_or_else(|| Reply::missing(&param("currency")))?;
    let unit_amount = integer(data.get("unit_amount"), &param("unit_amount"))?
        .ok_or_else(|| Reply::missing(&param("unit_amount")))?;
    if unit_amount < 0 {
        return Err(Reply::invalid(
            Some(&param("unit_amount")),
            "This value must be greater than or equal to 0.",
        ));
    }
    let product_name = data
        .get("product_data")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str);
    let product = match (text(data, "product"), product_name) {
        (Some(product), _) => product.to_owned(),
        (None, Some(_)) => state.new_id("prod_", 14),
        (None, None) => {
            let param = format!("line_items[{index}][price_data][product_data][name]");
            return Err(Reply::missing(&param));
        }
    };
    let interval = data
        .get("recurring")
        .and_then(|r| r.get("interval"))
        .and_then(Value::as_str);
    let id = state.new_id("price_", 24);
    Ok(objects::price(objects::PriceFields {
        id: &id,
        product: &product,
        created: now,
        currency: &currency.to_ascii_lowercase(),
        unit_amount: Some(unit_amount),
        lookup_key: None,
        interval,
        nickname: product_name,
    }))
}

fn create_meter_event(state: &mut State, params: &Map<String, Value>) -> Reply {
    match build_meter_event(state, params) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn build_meter_event(state: &mut State, params: &Map<String, Value>) -> Result<Reply, Reply> {
    let event_name = text(params, "event_name").ok_or_else(|| Reply::missing("event_name"))?;
    let payload = params
        .get("payload")
        .and_then(Value::as_object)
        .ok_or_else(|| Reply::missing("payload"))?;
    let customer = text(payload, "stripe_customer_id")
        .ok_or_else(|| Reply::missing("payload[stripe_customer_id]"))?;
    let value = integer(payload.get("value"), "payload[value]")?
        .ok_or_else(|| Reply::missing("payload[value]"))?;
    let now = now();
    let timestamp = integer(params.get("timestamp"), "timestamp")?.unwrap_or(now);
    if timestamp < now.saturating_sub(METER_PAST_SECS)
        || timestamp > now.saturating_add(METER_FUTURE_SECS)
    {
        return Err(Reply::invalid(
            Some("timestamp"),
            "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
        ));
    }
    let identifier = match text(params, "identifier") {
        Some(identifier) => identifier.to_owned(),
        None => state.new_id("", 32),
    };
    if state.meter_identifiers.contains(&identifier) {
        // Stripe's words; it sends no error code for this.
        return Err(Reply::invalid(
            None,
            &format!("An event already exists with identifier {identifier}."),
        ));
    }
    state.meter_identifiers.insert(identifier.clone());
    state.meter_events.push(MeterEvent {
        event_name: event_name.to_owned(),
        customer: customer.to_owned(),
        value,
        identifier: identifier.clone(),
        timestamp,
    });
    Ok(Reply::ok(objects::meter_event(
        event_name,
        &identifier,
        Value::Object(payload.clone()),
        now,
        timestamp,
    )))
}

/// A stand-in for Stripe's hosted Checkout page, so a browser (or a test
/// following the session's `url`) lands somewhere.
fn checkout_page(state: &State, id: &str) -> Response {
    match state.sessions.get(id) {
        Some(session) => {
            let status = session
                .object
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("open");
            let page = format!(
                "<!doctype html><title>Fake Stripe Checkout</title>\
                 <h1>Fake Stripe Checkout</h1><p>Session <code>{id}</code> is {status}.</p>"
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such checkout session").into_response(),
    }
}
