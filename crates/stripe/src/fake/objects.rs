//! The JSON the fake answers with, shaped like Stripe's objects in the API
//! version async-stripe pins (every field present, `null` when unset), so
//! async-stripe's typed models decode it and code written against the fake
//! reads real Stripe the same way.

use serde_json::{Map, Value, json};

/// The API version the fake renders objects and events in: the one the
/// async-stripe client sends as `Stripe-Version`.
pub(crate) fn api_version() -> &'static str {
    stripe_shared::version::VERSION.as_str()
}

/// Stripe's error body.
pub(crate) fn error(kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> Value {
    let mut error = Map::new();
    if let Some(code) = code {
        error.insert("code".into(), code.into());
        error.insert(
            "doc_url".into(),
            format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            )
            .into(),
        );
    }
    error.insert("message".into(), message.into());
    if let Some(param) = param {
        error.insert("param".into(), param.into());
    }
    error.insert("type".into(), kind.into());
    json!({ "error": error })
}

/// A list object, as Stripe nests lists inside objects.
pub(crate) fn list(data: Vec<Value>, url: String) -> Value {
    json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "total_count": data.len(),
        "url": url,
    })
}

pub(crate) struct CustomerFields<'a> {
    pub id: &'a str,
    pub created: i64,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub description: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub metadata: Value,
    pub invoice_prefix: &'a str,
}

pub(crate) fn customer(c: CustomerFields<'_>) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": c.created,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": c.description,
        "discount": null,
        "email": c.email,
        "invoice_prefix": c.invoice_prefix,
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": c.metadata,
        "name": c.name,
        "next_invoice_sequence": 1,
        "phone": c.phone,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    })
}

/// A Price: `interval` `None` for a one-time price.
pub(crate) struct PriceFields<'a> {
    pub id: &'a str,
    pub product: &'a str,
    pub created: i64,
    pub currency: &'a str,
    pub unit_amount: Option<i64>,
    pub lookup_key: Option<&'a str>,
    pub interval: Option<&'a str>,
    pub nickname: Option<&'a str>,
}

pub(crate) fn price(p: PriceFields<'_>) -> Value {
    let recurring = p.interval.map(|interval| {
        json!({
            "interval": interval,
            "interval_count": 1,
            "meter": null,
            "trial_period_days": null,
            "usage_type": "licensed"
        })
    });
    json!({
        "id": p.id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": p.lookup_key,
        "metadata": {},
        "nickname": p.nickname,
        "product": p.product,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": if p.interval.is_some() { "recurring" } else { "one_time" },
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": p.unit_amount.map(|a| a.to_string())
    })
}

pub(crate) struct SessionFields<'a> {
    pub id: &'a str,
    pub created: i64,
    pub mode: &'a str,
    pub customer: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub amount: i64,
    pub success_url: Option<&'a str>,
    pub cancel_url: Option<&'a str>,
    pub client_reference_id: Option<&'a str>,
    pub metadata: Value,
    pub url: &'a str,
}

pub(crate) fn checkout_session(s: SessionFields<'_>) -> Value {
    json!({
        "id": s.id,
        "object": "checkout.session",
        "adaptive_pricing": null,
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": s.amount,
        "amount_total": s.amount,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": s.cancel_url,
        "client_reference_id": s.client_reference_id,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": s.created,
        "currency": s.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer": s.customer,
        "customer_creation": null,
        "customer_details": null,
        "customer_email": null,
        "discounts": [],
        // Stripe's default: a session expires a day after it is created.
        "expires_at": s.created + 24 * 3600,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null,
        "metadata": s.metadata,
        "mode": s.mode,
        "origin_context": null,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "always",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": null,
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": s.success_url,
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted",
        "url": s.url,
        "wallet_options": null
    })
}

/// The `customer_details` a completed session reports.
pub(crate) fn customer_details(name: Option<&str>, email: Option<&str>) -> Value {
    json!({
        "address": null,
        "business_name": null,
        "email": email,
        "individual_name": null,
        "name": name,
        "phone": null,
        "tax_exempt": "none",
        "tax_ids": []
    })
}

pub(crate) struct ItemFields<'a> {
    pub id: &'a str,
    pub subscription: &'a str,
    pub created: i64,
    pub price: Value,
    pub quantity: u64,
    pub period_start: i64,
    pub period_end: i64,
}

pub(crate) fn subscription_item(i: ItemFields<'_>) -> Value {
    let plan = plan(&i.price);
    json!({
        "id": i.id,
        "object": "subscription_item",
        "billing_thresholds": null,
        "created": i.created,
        "current_period_end": i.period_end,
        "current_period_start": i.period_start,
        "discounts": [],
        "metadata": {},
        "plan": plan,
        "price": i.price,
        "quantity": i.quantity,
        "subscription": i.subscription,
        "tax_rates": []
    })
}

/// The legacy Plan view of a recurring price, which Stripe still puts on
/// every subscription item.
fn plan(price: &Value) -> Value {
    let field = |key: &str| price.get(key).cloned().unwrap_or(Value::Null);
    let recurring = |key: &str| price.pointer(&format!("/recurring/{key}")).cloned();
    json!({
        "id": field("id"),
        "object": "plan",
        "active": field("active"),
        "amount": field("unit_amount"),
        "amount_decimal": field("unit_amount_decimal"),
        "billing_scheme": field("billing_scheme"),
        "created": field("created"),
        "currency": field("currency"),
        "interval": recurring("interval").unwrap_or_else(|| "month".into()),
        "interval_count": recurring("interval_count").unwrap_or_else(|| 1.into()),
        "livemode": false,
        "metadata": {},
        "meter": null,
        "nickname": field("nickname"),
        "product": field("product"),
        "tiers_mode": null,
        "transform_usage": null,
        "trial_period_days": null,
        "usage_type": recurring("usage_type").unwrap_or_else(|| "licensed".into())
    })
}

pub(crate) struct SubscriptionFields<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub created: i64,
    pub currency: &'a str,
    pub status: &'a str,
    pub items: Vec<Value>,
    pub metadata: Value,
    pub latest_invoice: Option<&'a str>,
}

pub(crate) fn subscription(s: SubscriptionFields<'_>) -> Value {
    let items_url = format!("/v1/subscription_items?subscription={}", s.id);
    json!({
        "id": s.id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": s.created,
        "billing_cycle_anchor_config": null,
        "billing_mode": { "flexible": null, "type": "classic", "updated_at": null },
        "billing_schedules": [],
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": "charge_automatically",
        "created": s.created,
        "currency": s.currency,
        "customer": s.customer,
        "days_until_due": null,
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "ended_at": null,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": list(s.items, items_url),
        "latest_invoice": s.latest_invoice,
        "livemode": false,
        "metadata": s.metadata,
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {
            "payment_method_options": null,
            "payment_method_types": null,
            "save_default_payment_method": "off"
        },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": s.created,
        "status": s.status,
        "test_clock": null,
        "transfer_data": null,
        "trial_end": null,
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": null
    })
}

pub(crate) struct InvoiceFields<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub subscription: &'a str,
    pub created: i64,
    pub currency: &'a str,
    pub amount_due: i64,
    pub paid: bool,
    pub period_start: i64,
    pub period_end: i64,
    pub base_url: &'a str,
}

pub(crate) fn invoice(i: InvoiceFields<'_>) -> Value {
    let amount_paid = if i.paid { i.amount_due } else { 0 };
    json!({
        "id": i.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Weft (fake Stripe)",
        "account_tax_ids": null,
        "amount_due": i.amount_due,
        "amount_overpaid": 0,
        "amount_paid": amount_paid,
        "amount_remaining": i.amount_due - amount_paid,
        "amount_shipping": 0,
        "application": null,
        "attempt_count": 1,
        "attempted": true,
        "auto_advance": !i.paid,
        "automatic_tax": {
            "disabled_reason": null,
            "enabled": false,
            "liability": null,
            "provider": null,
            "status": null
        },
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": i.created,
        "currency": i.currency,
        "custom_fields": null,
        "customer": i.customer,
        "customer_address": null,
        "customer_email": null,
        "customer_name": null,
        "customer_phone": null,
        "customer_shipping": null,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "due_date": null,
        "effective_at": i.created,
        "ending_balance": 0,
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": format!("{}/i/{}", i.base_url, i.id),
        "invoice_pdf": format!("{}/i/{}/pdf", i.base_url, i.id),
        "issuer": { "type": "self" },
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": list(Vec::new(), format!("/v1/invoices/{}/lines", i.id)),
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": null,
        "on_behalf_of": null,
        "parent": {
            "quote_details": null,
            "subscription_details": { "metadata": {}, "subscription": i.subscription },
            "type": "subscription_details"
        },
        "payment_settings": {
            "default_mandate": null,
            "payment_method_options": null,
            "payment_method_types": null
        },
        "period_end": i.period_end,
        "period_start": i.period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": if i.paid { "paid" } else { "open" },
        "status_transitions": {
            "finalized_at": i.created,
            "marked_uncollectible_at": null,
            "paid_at": if i.paid { Some(i.created) } else { None },
            "voided_at": null
        },
        "subscription": i.subscription,
        "subtotal": i.amount_due,
        "subtotal_excluding_tax": i.amount_due,
        "test_clock": null,
        "total": i.amount_due,
        "total_discount_amounts": [],
        "total_excluding_tax": i.amount_due,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": i.created
    })
}

pub(crate) fn meter_event(
    event_name: &str,
    identifier: &str,
    payload: Value,
    created: i64,
    timestamp: i64,
) -> Value {
    json!({
        "object": "billing.meter_event",
        "created": created,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": false,
        "payload": payload,
        "timestamp": timestamp
    })
}

/// The envelope Stripe posts to webhook endpoints.
pub(crate) fn event(
    id: &str,
    kind: &str,
    created: i64,
    object: Value,
    previous_attributes: Option<Value>,
) -> Value {
    let mut data = Map::new();
    data.insert("object".into(), object);
    if let Some(previous) = previous_attributes {
        data.insert("previous_attributes".into(), previous);
    }
    json!({
        "id": id,
        "object": "event",
        "api_version": api_version(),
        "created": created,
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        // Events caused by the customer (paying on the Checkout page) or by
        // Stripe's own schedule carry no API request.
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
}
