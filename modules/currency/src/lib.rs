//! The `currency` module: EUR-based reference rates and exact conversion between them.
//!
//! - Owns: table `currency_rates` (migrations in `cleave-migrations::currency`).
//! - Provides: [`currency_api::CurrencyApi`] through [`CurrencyModule`].
//! - Requires: nothing.
//!
//! Rates are stored as decimal strings and conversion uses `rust_decimal`, so 1 EUR is exactly
//! 1.1305 USD and back, with no floating-point drift. The table is read once, on first use,
//! and kept in memory (a page converts every price it shows); a changed table takes effect
//! at the next start.

mod entity;

use cleave_kernel::module;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use cleave_domain::{CurrencyCode, Money};
use cleave_kernel::CallContext;
use currency_api::{CurrencyApi, CurrencyError};
use rust_decimal::Decimal;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Settings of `[modules.currency]`: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CurrencyConfig {}

/// What the currency module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct CurrencyDeps;

/// The currency module, in process.
#[module(contract = currency_api::CurrencyContract, config = CurrencyConfig,
    owns = "exchange rates",
    start = Ok(CurrencyModule::new(start.db()?, start.config(), CurrencyDeps)))]
pub struct CurrencyModule {
    db: DatabaseConnection,
    /// The rate table, read from the database on first use and kept: every page converts
    /// prices, and the rates only change with a migration (and so a restart).
    rates: OnceCell<BTreeMap<String, Decimal>>,
}

impl CurrencyModule {
    /// The module over its (migrated) database.
    pub fn new(db: DatabaseConnection, _config: &CurrencyConfig, _deps: CurrencyDeps) -> Arc<Self> {
        Arc::new(Self {
            db,
            rates: OnceCell::new(),
        })
    }

    async fn rates(&self) -> Result<&BTreeMap<String, Decimal>, CurrencyError> {
        self.rates
            .get_or_try_init(|| async {
                let rows = entity::Entity::find()
                    .order_by_asc(entity::Column::Code)
                    .all(&self.db)
                    .await
                    .map_err(storage_error)?;
                rows.into_iter()
                    .map(|r| {
                        let rate =
                            Decimal::from_str(&r.per_eur).map_err(|e| CurrencyError::Internal {
                                reason: format!("rate of {} is not a decimal: {e}", r.code),
                            })?;
                        Ok((r.code, rate))
                    })
                    .collect()
            })
            .await
    }

    async fn rate(&self, code: &str) -> Result<Decimal, CurrencyError> {
        let unsupported = || CurrencyError::UnsupportedCurrency {
            currency_code: code.to_owned(),
        };
        if CurrencyCode::parse(code).is_err() {
            return Err(unsupported());
        }
        self.rates()
            .await?
            .get(code)
            .copied()
            .ok_or_else(unsupported)
    }
}

fn storage_error(err: DbErr) -> CurrencyError {
    cleave_kernel::db::storage_error(&err)
}

#[async_trait]
impl CurrencyApi for CurrencyModule {
    async fn supported_currencies(
        &self,
        _ctx: &CallContext,
    ) -> Result<Vec<CurrencyCode>, CurrencyError> {
        self.rates()
            .await?
            .keys()
            .map(|code| {
                CurrencyCode::parse(code.clone()).map_err(|e| CurrencyError::Internal {
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    async fn convert(
        &self,
        _ctx: &CallContext,
        from: Money,
        to_code: String,
    ) -> Result<Money, CurrencyError> {
        let from_rate = self.rate(&from.currency_code).await?;
        let to_rate = self.rate(&to_code).await?;
        from.validate().map_err(|e| CurrencyError::InvalidMoney {
            detail: e.to_string(),
        })?;
        if from.currency_code == to_code {
            return Ok(from);
        }
        // Multiply first, then divide: keeps the most significant digits.
        let converted = from
            .to_decimal()
            .checked_mul(to_rate)
            .and_then(|v| v.checked_div(from_rate))
            .ok_or_else(|| CurrencyError::InvalidMoney {
                detail: format!("{from} is too large to convert"),
            })?;
        Money::from_decimal(&to_code, converted).map_err(|e| CurrencyError::InvalidMoney {
            detail: e.to_string(),
        })
    }
}
