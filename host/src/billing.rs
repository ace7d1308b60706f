//! Billing: the credits ledger, plans and their limits, credit packages,
//! Stripe checkout and webhooks, and monthly invoices. Amounts are integers
//! throughout (`credits::Micro` for credits, minor units for money).

pub mod config;
pub mod credits;
pub mod invoices;
pub mod ledger;
pub mod stripe;

use std::collections::HashMap;

use serde::Serialize;

pub use config::{BillingConfig, PlanConfig};
pub use credits::{Micro, Price};
pub use ledger::{CreditLedger, EntryKind, NewEntry, Posted};

use crate::db::{self, Db, Exec, Mode, Scope, Stmt};
use crate::ids::{TenantId, now_ms};

/// Why a billing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    /// The tenant has no billing account where one must exist.
    #[error("the tenant has no billing account")]
    NoAccount,
    #[error("no plan {0:?}")]
    UnknownPlan(String),
    #[error("no credit package {0:?}")]
    UnknownPackage(String),
    /// Input that cannot be right (a zero grant, a bad package).
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err.into())
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tenant's billing account as read.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub plan: String,
    pub suspended: bool,
    pub balance: Micro,
    /// What LLM calls in flight hold of the balance.
    pub held: Micro,
    pub stripe_customer_id: Option<String>,
    pub subscription_status: Option<String>,
    pub current_period_end: Option<i64>,
}

/// Reads `tenant`'s account in `tx` (creating it on the default plan).
async fn account_in(tx: &mut impl Exec, tenant: &TenantId, default_plan: &str) -> Result<Account> {
    ledger::ensure_account(tx, tenant, default_plan).await?;
    let row = tx
        .fetch_optional(
            Stmt::new(
                "SELECT plan, suspended, balance, stripe_customer_id, subscription_status, \
                 current_period_end, held FROM billing_accounts WHERE tenant_id = $1",
            )
            .bind(tenant.as_str()),
        )
        .await?
        .ok_or(Error::NoAccount)?;
    Ok(Account {
        plan: row.get(0)?,
        suspended: row.get::<i64>(1)? != 0,
        balance: Micro(row.get(2)?),
        stripe_customer_id: row.get(3)?,
        subscription_status: row.get(4)?,
        current_period_end: row.get(5)?,
        held: Micro(row.get(6)?),
    })
}

/// The billing service: plans by id, the ledger, accounts.
#[derive(Debug)]
pub struct Billing {
    db: Db,
    config: BillingConfig,
    plans: HashMap<String, PlanConfig>,
    pub ledger: CreditLedger,
}

impl Billing {
    /// The service over `db` with `config`'s plans and packages.
    pub fn new(db: Db, config: BillingConfig) -> Result<Self> {
        let plans: HashMap<_, _> = config
            .plans
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect();
        if !plans.contains_key(&config.default_plan) {
            return Err(Error::UnknownPlan(config.default_plan.clone()));
        }
        Ok(Self {
            ledger: CreditLedger::new(db.clone(), config.default_plan.clone()),
            db,
            config,
            plans,
        })
    }

    /// The configuration this service runs with.
    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    /// A plan by id.
    pub fn plan(&self, id: &str) -> Option<&PlanConfig> {
        self.plans.get(id)
    }

    /// Every plan, in configuration order.
    pub fn plans(&self) -> &[PlanConfig] {
        &self.config.plans
    }

    /// The plan a stored id names, or the default plan if it is gone from
    /// the configuration (a tenant is never left without limits).
    pub fn plan_or_default(&self, id: &str) -> &PlanConfig {
        self.plans
            .get(id)
            .or_else(|| self.plans.get(&self.config.default_plan))
            .unwrap_or(&self.config.plans[0])
    }

    /// `tenant`'s account, created on first use.
    pub async fn account(&self, tenant: &TenantId) -> Result<Account> {
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        let account = account_in(&mut tx, tenant, &self.config.default_plan).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Puts `tenant` on `plan`.
    pub async fn set_plan(&self, tenant: &TenantId, plan: &str) -> Result<()> {
        if !self.plans.contains_key(plan) {
            return Err(Error::UnknownPlan(plan.into()));
        }
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        ledger::ensure_account(&mut tx, tenant, &self.config.default_plan).await?;
        tx.execute(
            Stmt::new(
                "UPDATE billing_accounts SET plan = $2, updated_at = $3 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .bind(plan)
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Suspends (or lifts the suspension of) `tenant`'s LLM use.
    pub async fn set_suspended(&self, tenant: &TenantId, suspended: bool) -> Result<()> {
        let mut tx = self.db.begin_unit(Scope::Tenant(tenant)).await?;
        ledger::ensure_account(&mut tx, tenant, &self.config.default_plan).await?;
        tx.execute(
            Stmt::new(
                "UPDATE billing_accounts SET suspended = $2, updated_at = $3 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .bind(i64::from(suspended))
            .bind(now_ms()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tenants with an account, for platform jobs.
    pub async fn tenants_with_accounts(&self) -> Result<Vec<TenantId>> {
        let mut tx = self.db.begin(Scope::Platform, Mode::Read).await?;
        let rows = tx
            .fetch_all(Stmt::new(
                "SELECT tenant_id FROM billing_accounts ORDER BY tenant_id",
            ))
            .await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_raw(r.get::<String>(0)?)))
            .collect()
    }
}

/// A credit package on sale.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Package {
    pub id: String,
    pub name: String,
    /// Credits granted, as an exact decimal string.
    #[schema(value_type = String)]
    pub credits: Micro,
    /// Price in minor units of `currency`.
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
}

/// LLM usage of one model on one UTC day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    #[schema(value_type = String)]
    pub credits: Micro,
}

/// `YYYY-MM-DD` of the UTC day holding `ms`.
pub fn day_string(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        })
        .unwrap_or_default()
}

impl Billing {
    /// Writes the configured packages if the table is empty (first start).
    pub async fn seed_packages(&self) -> Result<()> {
        let mut tx = self.db.begin_unit(Scope::Platform).await?;
        let row = tx
            .fetch_optional(Stmt::new("SELECT COUNT(*) FROM credit_packages"))
            .await?;
        if row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0) == 0 {
            for (i, p) in self.config.packages.iter().enumerate() {
                tx.execute(
                    Stmt::new(
                        "INSERT INTO credit_packages (id, name, credits, price_minor, currency, active, position, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
                    )
                    .bind(&p.id)
                    .bind(&p.name)
                    .bind(Micro::credits(p.credits).0)
                    .bind(p.price_minor)
                    .bind(&self.config.currency)
                    .bind(i64::try_from(i).unwrap_or(0))
                    .bind(now_ms()),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Packages in shop order (inactive ones too when `all`).
    pub async fn packages(&self, all: bool) -> Result<Vec<Package>> {
        let mut tx = self.db.begin(Scope::Platform, Mode::Read).await?;
        let rows = tx
            .fetch_all(Stmt::new(
                "SELECT id, name, credits, price_minor, currency, active FROM credit_packages \
                 ORDER BY position, id",
            ))
            .await?;
        let packages = rows
            .iter()
            .map(|r| {
                Ok(Package {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    credits: Micro(r.get(2)?),
                    price_minor: r.get(3)?,
                    currency: r.get(4)?,
                    active: r.get::<i64>(5)? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(packages.into_iter().filter(|p| all || p.active).collect())
    }

    /// One package by id.
    pub async fn package(&self, id: &str) -> Result<Package> {
        self.packages(true)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::UnknownPackage(id.into()))
    }

    /// Creates or replaces a package (the superadmin's edit).
    pub async fn put_package(&self, package: &Package) -> Result<()> {
        if package.credits.0 <= 0 || package.price_minor < 0 || package.name.trim().is_empty() {
            return Err(Error::Invalid(
                "a package needs a name, credits > 0 and a price >= 0".into(),
            ));
        }
        let mut tx = self.db.begin_unit(Scope::Platform).await?;
        let updated = tx
            .execute(
                Stmt::new(
                    "UPDATE credit_packages SET name = $2, credits = $3, price_minor = $4, currency = $5, \
                     active = $6, updated_at = $7 WHERE id = $1",
                )
                .bind(&package.id)
                .bind(&package.name)
                .bind(package.credits.0)
                .bind(package.price_minor)
                .bind(&package.currency)
                .bind(i64::from(package.active))
                .bind(now_ms()),
            )
            .await?;
        if updated == 0 {
            tx.execute(
                Stmt::new(
                    "INSERT INTO credit_packages (id, name, credits, price_minor, currency, active, position, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1000, $7)",
                )
                .bind(&package.id)
                .bind(&package.name)
                .bind(package.credits.0)
                .bind(package.price_minor)
                .bind(&package.currency)
                .bind(i64::from(package.active))
                .bind(now_ms()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// LLM usage by day and model in `[from, to)` (ms), of one user if given.
    pub async fn llm_usage(
        &self,
        tenant: &TenantId,
        user: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<ModelUsage>> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let day = "(created_at / 86400000)";
        let mut stmt = Stmt::new(format!(
            "SELECT {day} AS d, COALESCE(model, '(none)'), COUNT(*), CAST(SUM(input_tokens) AS BIGINT), \
             CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost) AS BIGINT) FROM llm_calls \
             WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3{} \
             GROUP BY d, COALESCE(model, '(none)') ORDER BY d, 2",
            if user.is_some() { " AND user_id = $4" } else { "" }
        ))
        .bind(tenant.as_str())
        .bind(from)
        .bind(to);
        if let Some(user) = user {
            stmt = stmt.bind(user);
        }
        let rows = tx.fetch_all(stmt).await?;
        rows.iter()
            .map(|r| {
                Ok(ModelUsage {
                    day: day_string(r.get::<i64>(0)? * 86_400_000),
                    model: r.get(1)?,
                    calls: r.get(2)?,
                    input_tokens: r.get(3)?,
                    output_tokens: r.get(4)?,
                    credits: Micro(r.get(5)?),
                })
            })
            .collect()
    }

    /// Tokens used today (UTC) by the tenant, or by one user.
    pub async fn tokens_today(&self, tenant: &TenantId, user: &str) -> Result<i64> {
        let mut tx = self.db.begin(Scope::Tenant(tenant), Mode::Read).await?;
        let row = tx
            .fetch_optional(
                Stmt::new(
                    "SELECT tokens FROM llm_daily WHERE tenant_id = $1 AND day = $2 AND user_id = $3",
                )
                .bind(tenant.as_str())
                .bind(now_ms() / 86_400_000)
                .bind(user),
            )
            .await?;
        Ok(row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0))
    }
}
