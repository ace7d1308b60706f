//! The two transactions around a gateway call — prepare (limits, chain,
//! estimate, the hold on the account) and settle (release, charge,
//! counters, the record) — the release of holds a crash left, and the
//! users' own limits.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{
    Ask, Attempt, Caller, Error, Gateway, ModelConfig, Policy, Result, SelectError, UserLimits,
    wire,
};
use crate::billing::{self, Micro, NewEntry, PlanConfig, ledger};
use crate::db::{Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

const DAY_MS: i64 = 86_400_000;

/// Next UTC midnight after `day`, as RFC 3339.
fn reset_at(day: i64) -> String {
    let ms = (day + 1) * DAY_MS;
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What the limits and the chain came to for one request.
pub(super) struct Assessment {
    pub(super) plan: PlanConfig,
    pub(super) user_limits: UserLimits,
    pub(super) chain: Vec<ModelConfig>,
    pub(super) input_tokens: u64,
    pub(super) max_output: u64,
    pub(super) estimate: Micro,
    pub(super) balance: Micro,
    /// What the tenant's calls in flight hold of the balance.
    pub(super) held: Micro,
    pub(super) suspended: bool,
    /// Endpoints on the tenant's own keys, by provider: their models cost
    /// the tenant no credits (the provider bills it directly).
    pub(super) own: HashMap<String, wire::Endpoint>,
    /// The tenant has a billing account row.
    pub(super) has_account: bool,
    /// The tenant is a Stripe customer: its usage is reported as meter
    /// events.
    pub(super) metered: bool,
}

impl Held {
    /// Whether `model` runs on the tenant's own key.
    pub(super) fn own_key(&self, model: &ModelConfig) -> bool {
        self.assessment.own.contains_key(&model.provider)
    }
}

/// A prepared (held) request.
pub(super) struct Held {
    pub(super) call_id: String,
    pub(super) task: String,
    pub(super) hold_id: String,
    pub(super) assessment: Assessment,
    pub(super) day: i64,
    pub(super) started: Instant,
}

/// How a request ended, for settling.
pub(super) struct Outcome<'a> {
    pub(super) answered: Option<(&'a ModelConfig, wire::Usage)>,
    pub(super) attempts: &'a [Attempt],
    pub(super) code: &'a str,
    pub(super) streamed: bool,
}

impl Gateway {
    /// Reads the account, plan and overrides, and builds the chain and the
    /// estimate; writes nothing.
    pub(super) async fn assess(
        &self,
        tx: &mut impl Exec,
        caller: &Caller,
        ask: Ask<'_>,
        role: Option<&str>,
        input_tokens: u64,
        max_output: u64,
    ) -> Result<Assessment> {
        // The account and the user's overrides in one statement.
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT a.plan, a.suspended, a.balance, \
                     CASE WHEN a.stripe_customer_id IS NULL THEN 0 ELSE 1 END, l.limits, a.held \
                     FROM billing_accounts a LEFT JOIN llm_user_limits l \
                     ON l.tenant_id = a.tenant_id AND l.user_id = $2 \
                     WHERE a.tenant_id = $1",
                )
                .bind(caller.tenant.as_str())
                .bind(&caller.user),
            )
            .await?;
        let default_plan = &self.billing.config().default_plan;
        let has_account = row.is_some();
        let (plan_id, suspended, balance, metered, limits, held) = match row {
            Some(row) => (
                row.get::<String>(0)?,
                row.get::<i64>(1)? != 0,
                row.get(2)?,
                row.get::<i64>(3)? != 0,
                row.get::<Option<String>>(4)?,
                row.get(5)?,
            ),
            None => {
                // No account yet; an admin may still have set the user's limits.
                let limits = tx
                    .fetch_optional(
                        Stmt::new(
                            "SELECT limits FROM llm_user_limits WHERE tenant_id = $1 AND user_id = $2",
                        )
                        .bind(caller.tenant.as_str())
                        .bind(&caller.user),
                    )
                    .await?
                    .map(|r| r.get::<String>(0))
                    .transpose()?;
                (default_plan.clone(), false, 0, false, limits, 0)
            }
        };
        let plan = self.billing.plan_or_default(&plan_id).clone();
        let user_limits: UserLimits = limits
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let own = self.own_endpoints(&caller.tenant).await?;
        let own_keys: HashSet<String> = own.keys().cloned().collect();
        let role_key = role.unwrap_or("default");
        let pick = |map: &std::collections::BTreeMap<String, String>| {
            map.get(role_key).or_else(|| map.get("default")).cloned()
        };
        let default = user_limits
            .default_models
            .as_ref()
            .and_then(pick)
            .or_else(|| pick(&plan.default_models));
        let allowed: Option<Vec<String>> = user_limits.allowed_models.clone().or_else(|| {
            plan.allowed_models
                .get(role_key)
                .or_else(|| plan.allowed_models.get("default"))
                .cloned()
        });
        let policy = Policy {
            default: default.as_deref(),
            allowed: allowed.as_deref(),
            own_keys: Some(&own_keys),
        };
        let chain: Vec<ModelConfig> = self
            .catalog
            .chain(
                &ask,
                &policy,
                &self.config.default_model,
                self.config.max_attempts,
            )?
            .into_iter()
            .cloned()
            .collect();
        let margin = self.billing.config().margin_bp;
        let estimate = chain
            .iter()
            .filter(|m| !own.contains_key(&m.provider))
            .map(|m| billing::credits::cost(m.price(), input_tokens, max_output, margin))
            .max()
            .unwrap_or_default();
        Ok(Assessment {
            plan,
            user_limits,
            chain,
            input_tokens,
            max_output,
            estimate,
            balance: Micro(balance),
            held: Micro(held),
            suspended,
            own,
            has_account,
            metered,
        })
    }

    /// Step 1: assess, check the limits, hold the estimate.
    pub(super) async fn prepare(
        &self,
        caller: &Caller,
        ask: Ask<'_>,
        role: Option<&str>,
        session: Option<&str>,
        input: u64,
        max_output: u64,
    ) -> Result<Held> {
        let started = Instant::now();
        let tenant = &caller.tenant;
        let now = now_ms();
        let day = now / DAY_MS;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        let a = self
            .assess(&mut tx, caller, ask, role, input, max_output)
            .await?;
        if a.suspended {
            return Err(Error::Suspended);
        }
        if !a.has_account {
            ledger::ensure_account(&mut tx, tenant, &self.billing.config().default_plan).await?;
        }
        let tokens = a.input_tokens + a.max_output;
        let call_id = uuid::Uuid::now_v7().to_string();
        let hold_id = format!("hold:{call_id}");
        // The account row first, then the counters, as the settlement and
        // the sweeper take them: on PostgreSQL two transactions locking the
        // same rows in other orders deadlock. Nothing to hold when every
        // model of the chain is on the tenant's own keys.
        if a.estimate.0 != 0 && !ledger::hold(&mut tx, tenant, a.estimate).await? {
            return Err(Error::InsufficientCredits {
                needed: a.estimate,
                balance: a.balance,
                held: a.held,
            });
        }
        self.reserve_tokens(&mut tx, tenant, day, "", tokens, a.plan.tokens_per_day)
            .await?;
        self.reserve_tokens(
            &mut tx,
            tenant,
            day,
            &caller.user,
            tokens,
            a.user_limits.tokens_per_day,
        )
        .await?;
        if let (Some(session), Some(limit)) = (session, a.plan.sessions_per_day) {
            let opened = tx
                .execute(
                    Stmt::new(
                        "INSERT INTO llm_sessions (tenant_id, day, session, user_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(session)
                    .bind(&caller.user)
                    .bind(now),
                )
                .await?;
            if opened == 1 {
                let row = tx
                    .fetch_optional(
                        Stmt::new(
                            "SELECT COUNT(*) FROM llm_sessions WHERE tenant_id = $1 AND day = $2",
                        )
                        .bind(tenant.as_str())
                        .bind(day),
                    )
                    .await?;
                let count = row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0);
                let count = u64::try_from(count).unwrap_or(0);
                if count > limit {
                    return Err(Error::DailyLimit {
                        what: "sessions",
                        limit,
                        used: count - 1,
                        reset_at: reset_at(day),
                    });
                }
            }
        }
        tx.execute(
            Stmt::new(
                "INSERT INTO credit_holds (id, tenant_id, amount, tokens, user_id, day, created_at, in_ledger) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
            )
            .bind(&hold_id)
            .bind(tenant.as_str())
            .bind(a.estimate.0)
            .bind(i64::try_from(tokens).unwrap_or(i64::MAX))
            .bind(&caller.user)
            .bind(day)
            .bind(now),
        )
        .await?;
        // The hold matters to this request's settlement and to writers
        // after it on the same connection, which see it uncommitted: it
        // commits with the settlement when the provider answers quickly.
        tx.commit_soon().await?;
        Ok(Held {
            call_id,
            task: ask.task.to_owned(),
            hold_id,
            assessment: a,
            day,
            started,
        })
    }

    /// Adds `tokens` to the day's counter of (`tenant`, `user`) unless that
    /// would pass `limit`; one statement, so concurrent calls cannot both
    /// slip under it.
    async fn reserve_tokens(
        &self,
        tx: &mut impl Exec,
        tenant: &TenantId,
        day: i64,
        user: &str,
        tokens: u64,
        limit: Option<u64>,
    ) -> Result<()> {
        let tokens_i = i64::try_from(tokens).unwrap_or(i64::MAX);
        let Some(limit) = limit else {
            tx.execute(
                Stmt::new(
                    "INSERT INTO llm_daily (tenant_id, day, user_id, tokens, calls) VALUES ($1, $2, $3, $4, 0) \
                     ON CONFLICT (tenant_id, day, user_id) DO UPDATE SET tokens = llm_daily.tokens + excluded.tokens",
                )
                .bind(tenant.as_str())
                .bind(day)
                .bind(user)
                .bind(tokens_i),
            )
            .await?;
            return Ok(());
        };
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let changed = if tokens <= limit {
            tx.execute(
                Stmt::new(
                    "INSERT INTO llm_daily (tenant_id, day, user_id, tokens, calls) VALUES ($1, $2, $3, $4, 0) \
                     ON CONFLICT (tenant_id, day, user_id) DO UPDATE SET tokens = llm_daily.tokens + excluded.tokens \
                     WHERE llm_daily.tokens + excluded.tokens <= $5",
                )
                .bind(tenant.as_str())
                .bind(day)
                .bind(user)
                .bind(tokens_i)
                .bind(limit_i),
            )
            .await?
        } else {
            0
        };
        if changed == 0 {
            let row = tx
                .fetch_optional(
                    Stmt::new(
                        "SELECT tokens FROM llm_daily WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(user),
                )
                .await?;
            let used = row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0);
            return Err(Error::DailyLimit {
                what: if user.is_empty() {
                    "tokens"
                } else {
                    "your tokens"
                },
                limit,
                used: u64::try_from(used).unwrap_or(0),
                reset_at: reset_at(day),
            });
        }
        Ok(())
    }

    /// Step 3: release the hold, charge what was used, record the call.
    pub(super) async fn settle(
        &self,
        caller: &Caller,
        held: &Held,
        outcome: Outcome<'_>,
    ) -> Result<(Micro, Micro)> {
        let tenant = &caller.tenant;
        let a = &held.assessment;
        let margin = self.billing.config().margin_bp;
        let own_key = outcome.answered.is_some_and(|(m, _)| held.own_key(m));
        let (cost, usage) = match outcome.answered {
            Some((_, usage)) if own_key => (Micro(0), usage),
            Some((model, usage)) => (
                billing::credits::cost(
                    model.price(),
                    usage.input_tokens,
                    usage.output_tokens,
                    margin,
                ),
                usage,
            ),
            None => (Micro(0), wire::Usage::default()),
        };
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        // The hold goes first, the account row with it: the lock order of
        // prepare. Gone if the sweeper released it (the call outlived the
        // sweeper's age).
        let hold = tx
            .fetch_optional(
                Stmt::new("DELETE FROM credit_holds WHERE id = $1 RETURNING amount, in_ledger")
                    .bind(&held.hold_id),
            )
            .await?;
        // What goes back on the account (`held`) goes with the charge.
        let mut release = Micro(0);
        let released = match hold {
            Some(row) => {
                let amount = Micro(row.get(0)?);
                if row.get::<i64>(1)? != 0 {
                    release_in_ledger(&mut tx, tenant, &held.call_id, amount, None, &caller.user)
                        .await?;
                } else {
                    release = amount;
                }
                true
            }
            None => false,
        };
        // The charge and the hold's end in one update of the account.
        let balance = if cost.0 != 0 {
            let key = format!("charge:{}", held.call_id);
            let charge = NewEntry {
                kind: billing::EntryKind::Charge,
                amount: Micro(-cost.0),
                idempotency_key: &key,
                reason: outcome.answered.map(|(m, _)| m.id.as_str()),
                reference: Some(&held.call_id),
                actor: Some(&caller.user),
            };
            match ledger::post_releasing(&mut tx, tenant, &charge, release).await? {
                billing::Posted::New(b) => Some(b),
                billing::Posted::Duplicate => None,
            }
        } else {
            ledger::release(&mut tx, tenant, release).await?;
            None
        };
        let used = usage.input_tokens + usage.output_tokens;
        // The sweeper already gave the reservation back if the hold is gone.
        let reserved = if released {
            a.input_tokens + a.max_output
        } else {
            0
        };
        let delta = i64::try_from(used).unwrap_or(i64::MAX) - i64::try_from(reserved).unwrap_or(0);
        // The tenant's counter (user '') and the user's, in one statement.
        tx.execute(
            Stmt::new(
                "UPDATE llm_daily SET tokens = CASE WHEN tokens + $4 < 0 THEN 0 ELSE tokens + $4 END, calls = calls + 1 \
                 WHERE tenant_id = $1 AND day = $2 AND user_id IN ('', $3)",
            )
            .bind(tenant.as_str())
            .bind(held.day)
            .bind(caller.user.as_str())
            .bind(delta),
        )
        .await?;
        let attempts = serde_json::to_string(outcome.attempts).unwrap_or_else(|_| "[]".into());
        let answered = outcome.answered.map(|(m, _)| m);
        tx.execute(
            Stmt::new(
                "INSERT INTO llm_calls (id, tenant_id, user_id, plugin, task, model, provider, \
                 input_tokens, output_tokens, cost, estimate, outcome, attempts, streamed, latency_us, created_at, own_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&held.call_id)
            .bind(tenant.as_str())
            .bind(&caller.user)
            .bind(caller.plugin.as_deref())
            .bind(&held.task)
            .bind(answered.map(|m| m.id.as_str()))
            .bind(answered.map(|m| m.provider.as_str()))
            .bind(i64::try_from(usage.input_tokens).unwrap_or(i64::MAX))
            .bind(i64::try_from(usage.output_tokens).unwrap_or(i64::MAX))
            .bind(cost.0)
            .bind(a.estimate.0)
            .bind(outcome.code)
            .bind(attempts)
            .bind(i64::from(outcome.streamed))
            .bind(i64::try_from(held.started.elapsed().as_micros()).unwrap_or(i64::MAX))
            .bind(now_ms())
            .bind(i64::from(own_key)),
        )
        .await?;
        // Tokens on the tenant's own key are the provider's to bill.
        // (A tenant that became a Stripe customer while this call ran is
        // metered from its next call.)
        if used > 0 && !own_key && a.metered {
            tx.execute(
                Stmt::new(
                    "INSERT INTO meter_reports (identifier, tenant_id, event_name, value, occurred_at, state, attempts) \
                     SELECT $1, $2, $3, $4, $5, 'pending', 0 FROM billing_accounts \
                     WHERE tenant_id = $2 AND stripe_customer_id IS NOT NULL",
                )
                .bind(format!("llm:{}", held.call_id))
                .bind(tenant.as_str())
                .bind(&self.billing.config().stripe.meter_event_name)
                .bind(i64::try_from(used).unwrap_or(i64::MAX))
                .bind(now_ms()),
            )
            .await?;
        }
        tx.commit().await?;
        let balance = match balance {
            Some(b) => b,
            None => self.billing.ledger.balance(tenant).await?,
        };
        Ok((cost, balance))
    }

    /// A user's overrides (empty when the admin set none).
    pub async fn user_limits(&self, tenant: &TenantId, user: &str) -> Result<UserLimits> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT limits FROM llm_user_limits WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant.as_str())
                .bind(user),
            )
            .await?;
        Ok(match row {
            Some(row) => serde_json::from_str(&row.get::<String>(0)?).unwrap_or_default(),
            None => UserLimits::default(),
        })
    }

    /// Stores a user's overrides; every model named must be in the catalog.
    pub async fn set_user_limits(
        &self,
        tenant: &TenantId,
        user: &str,
        limits: &UserLimits,
    ) -> Result<()> {
        let named = limits
            .allowed_models
            .iter()
            .flatten()
            .chain(limits.default_models.iter().flat_map(|m| m.values()));
        for id in named {
            if self.catalog.get(id).is_none() {
                return Err(SelectError::UnknownModel(id.clone()).into());
            }
        }
        let json = serde_json::to_string(limits).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        tx.execute(
            Stmt::new(
                "INSERT INTO llm_user_limits (tenant_id, user_id, limits, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(user)
            .bind(json)
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Releases holds older than `age` (left by a crash between prepare and
    /// settle): the estimate goes back, the reserved tokens too. Returns
    /// how many were released.
    pub async fn release_stale_holds(&self, age: Duration) -> Result<usize> {
        let cutoff = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.db.begin(Scope::Platform, Mode::Read).await?;
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT id, tenant_id FROM credit_holds \
                     WHERE created_at < $1 ORDER BY created_at LIMIT 500",
                )
                .bind(cutoff),
            )
            .await?;
        drop(tx);
        let mut released = 0;
        for row in rows {
            let hold_id: String = row.get(0)?;
            let tenant = TenantId::from_raw(row.get::<String>(1)?);
            let mut tx = self.db.begin_unit(Scope::Tenant(&tenant)).await?;
            // The hold first, then the account row: the settlement's lock
            // order. Gone if its call settled meanwhile.
            let Some(hold) = tx
                .fetch_optional(
                    Stmt::new(
                        "DELETE FROM credit_holds WHERE id = $1 \
                         RETURNING amount, tokens, user_id, day, in_ledger",
                    )
                    .bind(&hold_id),
                )
                .await?
            else {
                continue;
            };
            let amount = Micro(hold.get(0)?);
            let tokens: i64 = hold.get(1)?;
            let user: String = hold.get(2)?;
            let day: i64 = hold.get(3)?;
            let call = hold_id.trim_start_matches("hold:");
            if hold.get::<i64>(4)? != 0 {
                release_in_ledger(&mut tx, &tenant, call, amount, Some("stale hold"), "system")
                    .await?;
            } else {
                ledger::release(&mut tx, &tenant, amount).await?;
            }
            for u in ["", user.as_str()] {
                tx.execute(
                    Stmt::new(
                        "UPDATE llm_daily SET tokens = CASE WHEN tokens - $4 < 0 THEN 0 ELSE tokens - $4 END \
                         WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(day)
                    .bind(u)
                    .bind(tokens),
                )
                .await?;
            }
            tx.commit().await?;
            released += 1;
        }
        Ok(released)
    }
}

/// Gives back a hold from before migration 0008, which is a ledger entry,
/// by a `release` entry of `amount` for `call`.
async fn release_in_ledger(
    tx: &mut impl Exec,
    tenant: &TenantId,
    call: &str,
    amount: Micro,
    reason: Option<&str>,
    actor: &str,
) -> Result<()> {
    if amount.0 == 0 {
        return Ok(());
    }
    let key = format!("release:{call}");
    ledger::post(
        tx,
        tenant,
        &NewEntry {
            kind: billing::EntryKind::Release,
            amount,
            idempotency_key: &key,
            reason,
            reference: Some(call),
            actor: Some(actor),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_reset_at_the_next_utc_midnight() {
        // Day 20,000 since the epoch is 2024-10-04.
        assert_eq!(reset_at(20_000), "2024-10-05T00:00:00Z");
    }
}
