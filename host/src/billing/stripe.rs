//! Billing through Stripe (`weft-stripe`, over async-stripe): a customer
//! per tenant, Checkout Sessions for credit packages and plan
//! subscriptions, signed webhooks processed once per event id, and LLM
//! usage reported as billing meter events.
//!
//! A webhook's effects and the record that its event was processed commit
//! in one transaction, so a replayed event (Stripe retries until it gets a
//! 2xx) does nothing the second time; a purchase's ledger entry is also
//! keyed by the Checkout Session, so even two different events for one
//! session credit it once.

use serde::Serialize;
use weft_stripe::{
    CheckoutMode, CheckoutRequest, StripeClient, SubscriptionStatus, WebhookError, WebhookEvent,
};

use super::{Billing, EntryKind, Micro, NewEntry, Result, ledger};
use crate::db::{Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

/// Why a Stripe operation failed (beside the database).
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// No secret key (or webhook secret) is configured.
    #[error("Stripe is not configured on this platform")]
    NotConfigured,
    #[error("the webhook signature is not valid: {0:?}")]
    Signature(WebhookError),
    #[error("Stripe refused the request: {0}")]
    Api(String),
}

/// What to sell in a checkout.
#[derive(Debug, Clone)]
pub enum Purchase {
    Package(String),
    Plan(String),
}

/// A checkout opened for a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Checkout {
    pub id: String,
    pub url: String,
}

/// What a webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    Processed,
    /// Seen before: acknowledged, nothing done.
    Duplicate,
    /// Not an event billing acts on (or for no tenant it knows).
    Ignored,
}

impl Billing {
    fn stripe(&self) -> Result<StripeClient, StripeError> {
        let config = &self.config.stripe;
        if config.secret_key.is_empty() {
            return Err(StripeError::NotConfigured);
        }
        StripeClient::new(&config.secret_key, &config.base_url)
            .map_err(|e| StripeError::Api(e.to_string()))
    }

    /// The tenant's Stripe customer, created on first use.
    async fn customer(&self, tenant: &TenantId, name: &str) -> Result<String, CheckoutError> {
        let account = self.account(tenant).await?;
        if let Some(id) = account.stripe_customer_id {
            return Ok(id);
        }
        let client = self.stripe()?;
        let id = client
            .create_customer(
                name,
                None,
                &[("tenant_id", tenant.as_str())],
                &format!("weft-customer-{tenant}"),
            )
            .await
            .map_err(|e| StripeError::Api(e.to_string()))?;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        tx.execute(
            Stmt::new(
                "UPDATE billing_accounts SET stripe_customer_id = $2, updated_at = $3 \
                 WHERE tenant_id = $1 AND stripe_customer_id IS NULL",
            )
            .bind(tenant.as_str())
            .bind(&id)
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(self.account(tenant).await?.stripe_customer_id.unwrap_or(id))
    }

    /// Opens a Checkout Session selling `what` to `tenant`.
    pub async fn checkout(
        &self,
        tenant: &TenantId,
        tenant_name: &str,
        what: &Purchase,
    ) -> Result<Checkout, CheckoutError> {
        let client = self.stripe()?;
        let (kind, package, plan, credits, amount, mode) = match what {
            Purchase::Package(id) => {
                let p = self.package(id).await?;
                if !p.active {
                    return Err(super::Error::UnknownPackage(id.clone()).into());
                }
                let mode = CheckoutMode::Payment {
                    amount_minor: p.price_minor,
                    currency: p.currency.clone(),
                    product_name: format!("{} credits ({})", p.credits, p.name),
                };
                ("package", Some(p.id), None, p.credits, p.price_minor, mode)
            }
            Purchase::Plan(id) => {
                let plan = self
                    .plan(id)
                    .ok_or_else(|| super::Error::UnknownPlan(id.clone()))?;
                let price = plan.stripe_price.clone().ok_or_else(|| {
                    super::Error::Invalid(format!("plan {id:?} is not sold through Stripe"))
                })?;
                let mode = CheckoutMode::Subscription { price };
                (
                    "plan",
                    None,
                    Some(plan.id.clone()),
                    Micro(0),
                    plan.monthly_fee_minor,
                    mode,
                )
            }
        };
        let customer = self.customer(tenant, tenant_name).await?;
        let request_id = uuid::Uuid::now_v7().to_string();
        let mut metadata = vec![
            ("tenant_id".to_owned(), tenant.to_string()),
            ("kind".to_owned(), kind.to_owned()),
        ];
        if let Some(p) = &package {
            metadata.push(("package".into(), p.clone()));
        }
        if let Some(p) = &plan {
            metadata.push(("plan".into(), p.clone()));
        }
        let session = client
            .create_checkout_session(
                &CheckoutRequest {
                    customer,
                    mode,
                    success_url: self.config.stripe.success_url.clone(),
                    cancel_url: self.config.stripe.cancel_url.clone(),
                    metadata,
                    client_reference_id: Some(tenant.to_string()),
                },
                &format!("weft-checkout-{request_id}"),
            )
            .await
            .map_err(|e| StripeError::Api(e.to_string()))?;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        tx.execute(
            Stmt::new(
                "INSERT INTO checkout_sessions (id, tenant_id, kind, package, plan, credits, amount_minor, \
                 currency, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9)",
            )
            .bind(&session.id)
            .bind(tenant.as_str())
            .bind(kind)
            .bind(package)
            .bind(plan)
            .bind(credits.0)
            .bind(amount)
            .bind(&self.config.currency)
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(Checkout {
            id: session.id,
            url: session.url,
        })
    }

    /// Verifies and applies one webhook delivery. `now` is the Unix time
    /// the signature's age is measured against.
    pub async fn webhook(
        &self,
        payload: &[u8],
        signature: &str,
        now: i64,
    ) -> Result<WebhookOutcome, CheckoutError> {
        let secret = &self.config.stripe.webhook_secret;
        if secret.is_empty() {
            return Err(StripeError::NotConfigured.into());
        }
        let event = weft_stripe::verify_webhook(
            payload,
            signature,
            secret,
            now,
            self.config.stripe.tolerance_secs,
        )
        .map_err(StripeError::Signature)?;
        let mut tx = self.db.begin_unit(Scope::Platform).await?;
        let first = tx
            .execute(
                Stmt::new(
                    "INSERT INTO stripe_events (id, kind, tenant_id, outcome, received_at) \
                     VALUES ($1, $2, NULL, 'received', $3) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.kind)
                .bind(now_ms()),
            )
            .await?;
        if first == 0 {
            return Ok(WebhookOutcome::Duplicate);
        }
        let (outcome, tenant) = self.apply(&mut tx, &event).await?;
        tx.execute(
            Stmt::new("UPDATE stripe_events SET outcome = $2, tenant_id = $3 WHERE id = $1")
                .bind(&event.id)
                .bind(match outcome {
                    WebhookOutcome::Processed => "processed",
                    _ => "ignored",
                })
                .bind(tenant.as_ref().map(TenantId::as_str)),
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The tenant whose Stripe customer is `customer`.
    async fn tenant_of_customer(
        &self,
        tx: &mut impl Exec,
        customer: Option<&str>,
    ) -> Result<Option<TenantId>> {
        let Some(customer) = customer else {
            return Ok(None);
        };
        let row = tx
            .fetch_optional(
                Stmt::new("SELECT tenant_id FROM billing_accounts WHERE stripe_customer_id = $1")
                    .bind(customer),
            )
            .await?;
        Ok(row
            .map(|r| r.get::<String>(0))
            .transpose()?
            .map(TenantId::from_raw))
    }

    /// The plan a subscription's prices name (by price id or lookup key).
    fn plan_for(&self, prices: &[String], lookup_keys: &[String]) -> Option<String> {
        self.config.plans.iter().find_map(|p| {
            let by_price = p
                .stripe_price
                .as_ref()
                .is_some_and(|id| prices.contains(id));
            let by_key = p
                .stripe_lookup_key
                .as_ref()
                .is_some_and(|k| lookup_keys.contains(k));
            (by_price || by_key).then(|| p.id.clone())
        })
    }

    async fn apply(
        &self,
        tx: &mut impl Exec,
        event: &WebhookEvent,
    ) -> Result<(WebhookOutcome, Option<TenantId>)> {
        let now = now_ms();
        if let Some(done) = event.checkout_completed() {
            let row = tx
                .fetch_optional(
                    Stmt::new(
                        "SELECT tenant_id, kind, credits, plan FROM checkout_sessions WHERE id = $1",
                    )
                    .bind(&done.session_id),
                )
                .await?;
            let Some(row) = row else {
                return Ok((WebhookOutcome::Ignored, None));
            };
            let tenant = TenantId::from_raw(row.get::<String>(0)?);
            let kind: String = row.get(1)?;
            let credits = Micro(row.get(2)?);
            let plan: Option<String> = row.get(3)?;
            if kind == "package" && done.payment_status == "paid" {
                ledger::ensure_account(tx, &tenant, &self.config.default_plan).await?;
                let key = format!("stripe:{}", done.session_id);
                ledger::post(
                    tx,
                    &tenant,
                    &NewEntry {
                        kind: EntryKind::Purchase,
                        amount: credits,
                        idempotency_key: &key,
                        reason: Some("credit package"),
                        reference: Some(&event.id),
                        actor: Some("stripe"),
                    },
                )
                .await?;
            }
            if let (Some(plan), Some(sub)) = (plan, done.subscription.as_deref()) {
                tx.execute(
                    Stmt::new(
                        "UPDATE billing_accounts SET plan = $2, stripe_subscription_id = $3, \
                         subscription_status = 'active', updated_at = $4 WHERE tenant_id = $1",
                    )
                    .bind(tenant.as_str())
                    .bind(plan)
                    .bind(sub)
                    .bind(now),
                )
                .await?;
            }
            tx.execute(
                Stmt::new(
                    "UPDATE checkout_sessions SET state = 'completed', completed_at = $2 WHERE id = $1",
                )
                .bind(&done.session_id)
                .bind(now),
            )
            .await?;
            return Ok((WebhookOutcome::Processed, Some(tenant)));
        }
        if let Some(sub) = event.subscription() {
            let Some(tenant) = self.tenant_of_customer(tx, Some(&sub.customer)).await? else {
                return Ok((WebhookOutcome::Ignored, None));
            };
            let ended = event.kind == "customer.subscription.deleted"
                || matches!(
                    sub.status,
                    SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
                );
            // A past-due subscription keeps its plan while Stripe retries
            // the payment; an ended one falls back to the default plan.
            let plan = if ended {
                Some(self.config.default_plan.clone())
            } else {
                self.plan_for(&sub.price_ids, &sub.lookup_keys)
            };
            let status = if ended {
                "canceled"
            } else {
                sub.status.as_str()
            };
            tx.execute(
                Stmt::new(
                    "UPDATE billing_accounts SET plan = COALESCE($2, plan), stripe_subscription_id = $3, \
                     subscription_status = $4, current_period_end = $5, updated_at = $6 WHERE tenant_id = $1",
                )
                .bind(tenant.as_str())
                .bind(plan)
                .bind(&sub.id)
                .bind(status)
                .bind(sub.current_period_end.map(|t| t * 1000))
                .bind(now),
            )
            .await?;
            return Ok((WebhookOutcome::Processed, Some(tenant)));
        }
        if let Some(invoice) = event.invoice() {
            let Some(tenant) = self
                .tenant_of_customer(tx, invoice.customer.as_deref())
                .await?
            else {
                return Ok((WebhookOutcome::Ignored, None));
            };
            let (status, period_end) = if event.kind == "invoice.paid" {
                ("active", invoice.period_end.map(|t| t * 1000))
            } else {
                ("past_due", None)
            };
            tx.execute(
                Stmt::new(
                    "UPDATE billing_accounts SET subscription_status = $2, \
                     current_period_end = COALESCE($3, current_period_end), updated_at = $4 \
                     WHERE tenant_id = $1",
                )
                .bind(tenant.as_str())
                .bind(status)
                .bind(period_end)
                .bind(now),
            )
            .await?;
            return Ok((WebhookOutcome::Processed, Some(tenant)));
        }
        Ok((WebhookOutcome::Ignored, None))
    }

    /// Sends pending usage reports as meter events (each with its stable
    /// identifier, so a resend after a crash or a timeout bills nothing
    /// twice). Returns how many were sent.
    pub async fn send_meter_reports(&self) -> Result<usize, CheckoutError> {
        let client = self.stripe()?;
        let mut tx = self.db.begin(Scope::Platform, Mode::Read).await?;
        let rows = tx
            .fetch_all(Stmt::new(
                "SELECT r.identifier, r.tenant_id, r.event_name, r.value, r.occurred_at, a.stripe_customer_id \
                 FROM meter_reports r JOIN billing_accounts a ON a.tenant_id = r.tenant_id \
                 WHERE r.state = 'pending' AND a.stripe_customer_id IS NOT NULL \
                 ORDER BY r.occurred_at LIMIT 200",
            ))
            .await?;
        drop(tx);
        let mut sent = 0;
        for row in rows {
            let identifier: String = row.get(0)?;
            let tenant = TenantId::from_raw(row.get::<String>(1)?);
            let event_name: String = row.get(2)?;
            let value: i64 = row.get(3)?;
            let occurred: i64 = row.get(4)?;
            let customer: String = row.get(5)?;
            let result = client
                .send_meter_event(&event_name, &customer, value, &identifier, occurred / 1000)
                .await;
            let mut tx = self.db.begin_unit(Scope::Tenant(&tenant)).await?;
            let stmt = match &result {
                Ok(()) => Stmt::new(
                    "UPDATE meter_reports SET state = 'sent', sent_at = $2, attempts = attempts + 1, \
                     last_error = NULL WHERE identifier = $1",
                )
                .bind(&identifier)
                .bind(now_ms()),
                Err(e) => Stmt::new(
                    "UPDATE meter_reports SET attempts = attempts + 1, last_error = $2, \
                     state = CASE WHEN attempts + 1 >= 20 THEN 'failed' ELSE 'pending' END \
                     WHERE identifier = $1",
                )
                .bind(&identifier)
                .bind(e.to_string()),
            };
            tx.execute(stmt).await?;
            tx.commit().await?;
            if result.is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    }
}

/// A checkout or webhook failure: the database, billing or Stripe.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Billing(#[from] super::Error),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

impl From<crate::db::Error> for CheckoutError {
    fn from(err: crate::db::Error) -> Self {
        Self::Billing(err.into())
    }
}

impl From<sqlx::Error> for CheckoutError {
    fn from(err: sqlx::Error) -> Self {
        Self::Billing(err.into())
    }
}
