//! Monthly invoices: one per tenant and calendar month (UTC), with lines
//! for the plan's platform fee, LLM tokens per model, plugin compute
//! (fuel), storage (GB-month) and bandwidth. Every amount is an integer of
//! minor units; each metered line rounds up once, from exact integers.
//!
//! - LLM: the credits charged for the model's calls in the month. Credits
//!   are prepaid, so the line is informational (amount 0) unless
//!   `prices.bill_llm_credits` is set; then `credits × per_1k_credits /
//!   1000`.
//! - Compute: `fuel × per_billion_fuel / 10^9`.
//! - Storage: the daily samples of stored bytes, summed, over the days of
//!   the month: `Σ bytes × per_gb_month / (days × 10^9)`.
//! - Bandwidth: plugin request and response bodies, `bytes ×
//!   per_gb_transfer / 10^9`.

use serde::{Deserialize, Serialize};

use super::{Billing, Error, Result};
use crate::db::{Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    /// `platform_fee`, `llm`, `compute`, `storage`, `bandwidth`.
    pub kind: String,
    pub description: String,
    /// How much was used, in `unit`s (an exact integer).
    pub quantity: i64,
    /// `month`, `micro_credits`, `fuel`, `byte_days`, `bytes`.
    pub unit: String,
    pub amount_minor: i64,
}

/// A month's invoice.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: String,
    /// `YYYY-MM`.
    pub period: String,
    pub currency: String,
    pub lines: Vec<Line>,
    pub subtotal_minor: i64,
    pub total_minor: i64,
    pub created_at: i64,
}

/// `(start_ms, end_ms, days)` of `period` (`YYYY-MM`).
pub fn month_bounds(period: &str) -> Result<(i64, i64, i64)> {
    let bad = || Error::Invalid(format!("{period:?} is not a YYYY-MM month"));
    let (y, m) = period.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    let first = time::Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
    let days = i64::from(month.length(year));
    let start = first.midnight().assume_utc().unix_timestamp() * 1000;
    Ok((start, start + days * 86_400_000, days))
}

/// The month before the one holding `ms`, as `YYYY-MM`.
pub fn previous_month(ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    let (year, month) = match date.month() {
        time::Month::January => (date.year() - 1, 12),
        m => (date.year(), u8::from(m) - 1),
    };
    format!("{year:04}-{month:02}")
}

/// `ceil(quantity × price / divisor)`, exactly.
fn priced(quantity: i64, price: i64, divisor: i128) -> i64 {
    let raw = i128::from(quantity) * i128::from(price);
    let rounded = (raw + divisor - 1).div_euclid(divisor);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

async fn one_i64(tx: &mut impl Exec, stmt: Stmt) -> Result<i64> {
    let row = tx.fetch_optional(stmt).await?;
    Ok(row
        .map(|r| r.get::<Option<i64>>(0))
        .transpose()?
        .flatten()
        .unwrap_or(0))
}

impl Billing {
    /// Records today's stored bytes of every tenant (the last sample of a
    /// day stands for it).
    pub async fn sample_storage(&self) -> Result<usize> {
        let day = now_ms() / 86_400_000;
        let mut tx = self.db.begin_unit(Scope::Platform).await?;
        let sampled = tx
            .execute(
                Stmt::new(
                    "INSERT INTO storage_samples (tenant_id, day, bytes) \
                     SELECT tenant_id, $1, bytes FROM tenant_storage WHERE true \
                     ON CONFLICT (tenant_id, day) DO UPDATE SET bytes = excluded.bytes",
                )
                .bind(day),
            )
            .await?;
        tx.commit().await?;
        Ok(usize::try_from(sampled).unwrap_or(0))
    }

    /// Computes the lines of `tenant`'s invoice for `period` from what was
    /// recorded, without storing anything.
    pub async fn invoice_lines(&self, tenant: &TenantId, period: &str) -> Result<Vec<Line>> {
        let (start, end, days) = month_bounds(period)?;
        let prices = &self.config.prices;
        let account = self.account(tenant).await?;
        let plan = self.plan_or_default(&account.plan).clone();
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let mut lines = vec![Line {
            kind: "platform_fee".into(),
            description: format!("{} plan, {period}", plan.name),
            quantity: 1,
            unit: "month".into(),
            amount_minor: plan.monthly_fee_minor,
        }];
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT model, CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
                     CAST(SUM(cost) AS BIGINT), COUNT(*) FROM llm_calls \
                     WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND model IS NOT NULL \
                     GROUP BY model ORDER BY model",
                )
                .bind(tenant.as_str())
                .bind(start)
                .bind(end),
            )
            .await?;
        for row in rows {
            let model: String = row.get(0)?;
            let (input, output, credits, calls): (i64, i64, i64, i64) =
                (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
            let amount = if prices.bill_llm_credits {
                priced(credits, prices.per_1k_credits_minor, 1_000 * 1_000_000)
            } else {
                0
            };
            lines.push(Line {
                kind: "llm".into(),
                description: format!(
                    "{model}: {calls} calls, {input} input + {output} output tokens, {} credits{}",
                    super::Micro(credits),
                    if prices.bill_llm_credits {
                        ""
                    } else {
                        " (prepaid)"
                    }
                ),
                quantity: credits,
                unit: "micro_credits".into(),
                amount_minor: amount,
            });
        }
        let fuel = one_i64(
            &mut tx,
            Stmt::new(
                "SELECT CAST(SUM(fuel) AS BIGINT) FROM usage_events \
                 WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
            )
            .bind(tenant.as_str())
            .bind(start)
            .bind(end),
        )
        .await?;
        lines.push(Line {
            kind: "compute".into(),
            description: "plugin compute".into(),
            quantity: fuel,
            unit: "fuel".into(),
            amount_minor: priced(fuel, prices.per_billion_fuel_minor, 1_000_000_000),
        });
        let byte_days = one_i64(
            &mut tx,
            Stmt::new(
                "SELECT CAST(SUM(bytes) AS BIGINT) FROM storage_samples \
                 WHERE tenant_id = $1 AND day >= $2 AND day < $3",
            )
            .bind(tenant.as_str())
            .bind(start / 86_400_000)
            .bind(end / 86_400_000),
        )
        .await?;
        lines.push(Line {
            kind: "storage".into(),
            description: format!("storage, GB-month over {days} days"),
            quantity: byte_days,
            unit: "byte_days".into(),
            amount_minor: priced(
                byte_days,
                prices.per_gb_month_minor,
                i128::from(days) * 1_000_000_000,
            ),
        });
        let bytes = one_i64(
            &mut tx,
            Stmt::new(
                "SELECT CAST(SUM(bytes_in + bytes_out) AS BIGINT) FROM usage_events \
                 WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
            )
            .bind(tenant.as_str())
            .bind(start)
            .bind(end),
        )
        .await?;
        lines.push(Line {
            kind: "bandwidth".into(),
            description: "plugin request and response bodies".into(),
            quantity: bytes,
            unit: "bytes".into(),
            amount_minor: priced(bytes, prices.per_gb_transfer_minor, 1_000_000_000),
        });
        // The outbox records one usage event per delivered message, as
        // plugin `outbox:<channel>`.
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT plugin, COUNT(*) FROM usage_events \
                     WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                     AND plugin LIKE 'outbox:%' GROUP BY plugin ORDER BY plugin",
                )
                .bind(tenant.as_str())
                .bind(start)
                .bind(end),
            )
            .await?;
        for row in rows {
            let plugin: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            let channel = plugin.trim_start_matches("outbox:");
            let price = prices.per_1k_messages_minor.of(channel).unwrap_or(0);
            lines.push(Line {
                kind: "messages".into(),
                description: format!("{channel} messages delivered"),
                quantity: count,
                unit: "messages".into(),
                amount_minor: priced(count, price, 1_000),
            });
        }
        Ok(lines)
    }

    /// `tenant`'s invoice for `period`: the stored one, or a new one made
    /// and stored now (an invoice never changes once made).
    pub async fn invoice(&self, tenant: &TenantId, period: &str) -> Result<Invoice> {
        let (_, end, _) = month_bounds(period)?;
        if let Some(invoice) = self.stored_invoice(tenant, period).await? {
            return Ok(invoice);
        }
        if end > now_ms() {
            return Err(Error::Invalid(format!(
                "{period} has not ended yet; its invoice is made after it"
            )));
        }
        let lines = self.invoice_lines(tenant, period).await?;
        let subtotal: i64 = lines.iter().map(|l| l.amount_minor).sum();
        let invoice = Invoice {
            id: uuid::Uuid::now_v7().to_string(),
            period: period.into(),
            currency: self.config.currency.clone(),
            subtotal_minor: subtotal,
            total_minor: subtotal,
            lines,
            created_at: now_ms(),
        };
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        tx.execute(
            Stmt::new(
                "INSERT INTO invoices (id, tenant_id, period, currency, subtotal_minor, total_minor, lines, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, period) DO NOTHING",
            )
            .bind(&invoice.id)
            .bind(tenant.as_str())
            .bind(period)
            .bind(&invoice.currency)
            .bind(invoice.subtotal_minor)
            .bind(invoice.total_minor)
            .bind(serde_json::to_string(&invoice.lines).map_err(|e| Error::Invalid(e.to_string()))?)
            .bind(invoice.created_at),
        )
        .await?;
        tx.commit().await?;
        // Another replica may have made it first: theirs stands.
        self.stored_invoice(tenant, period)
            .await?
            .ok_or(Error::NoAccount)
    }

    async fn stored_invoice(&self, tenant: &TenantId, period: &str) -> Result<Option<Invoice>> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT id, period, currency, subtotal_minor, total_minor, lines, created_at \
                     FROM invoices WHERE tenant_id = $1 AND period = $2",
                )
                .bind(tenant.as_str())
                .bind(period),
            )
            .await?;
        row.map(|r| invoice_from_row(&r)).transpose()
    }

    /// `tenant`'s invoices, newest first.
    pub async fn invoices(&self, tenant: &TenantId) -> Result<Vec<Invoice>> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let rows = tx
            .fetch_all(
                Stmt::new(
                    "SELECT id, period, currency, subtotal_minor, total_minor, lines, created_at \
                     FROM invoices WHERE tenant_id = $1 ORDER BY period DESC",
                )
                .bind(tenant.as_str()),
            )
            .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    /// Makes last month's invoice for every tenant that has none yet.
    pub async fn invoice_last_month(&self, now: i64) -> Result<usize> {
        let period = previous_month(now);
        let mut made = 0;
        for tenant in self.tenants_with_accounts().await? {
            if self.stored_invoice(&tenant, &period).await?.is_none() {
                self.invoice(&tenant, &period).await?;
                made += 1;
            }
        }
        Ok(made)
    }
}

fn invoice_from_row(row: &crate::db::Row) -> Result<Invoice> {
    let lines: String = row.get(5)?;
    Ok(Invoice {
        id: row.get(0)?,
        period: row.get(1)?,
        currency: row.get(2)?,
        subtotal_minor: row.get(3)?,
        total_minor: row.get(4)?,
        lines: serde_json::from_str(&lines).map_err(|e| Error::Invalid(e.to_string()))?,
        created_at: row.get(6)?,
    })
}

/// The invoice as CSV: one row per line, then the totals.
pub fn to_csv(invoice: &Invoice) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    }
    let mut out = String::from("period,kind,description,quantity,unit,amount_minor,currency\n");
    for l in &invoice.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            invoice.period,
            l.kind,
            field(&l.description),
            l.quantity,
            l.unit,
            l.amount_minor,
            invoice.currency
        ));
    }
    out.push_str(&format!(
        "{},total,,,,{},{}\n",
        invoice.period, invoice.total_minor, invoice.currency
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_days_and_bounds() {
        let (start, end, days) = month_bounds("2024-02").expect("month");
        assert_eq!(days, 29);
        assert_eq!(end - start, 29 * 86_400_000);
        assert_eq!(start, 1_706_745_600_000);
        assert!(month_bounds("2024-13").is_err());
        assert!(month_bounds("24-01").is_err());
        assert_eq!(previous_month(1_706_745_600_000), "2024-01");
        assert_eq!(previous_month(1_704_067_200_000), "2023-12");
    }

    #[test]
    fn metered_lines_round_up_once() {
        assert_eq!(priced(1, 1, 1_000_000_000), 1);
        assert_eq!(priced(0, 25, 1_000_000_000), 0);
        assert_eq!(priced(2_000_000_000, 25, 1_000_000_000), 50);
        assert_eq!(priced(2_000_000_001, 25, 1_000_000_000), 51);
    }
}
