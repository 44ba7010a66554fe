//! The `payment` module: card charges and refunds, persisted without card numbers.
//!
//! - Owns: table `payment_charges` (migrations in `cleave-migrations::payment`).
//! - Provides: [`payment_api::PaymentApi`] through [`PaymentModule`].
//! - Requires: nothing.
//!
//! As in Online Boutique, no card network is called: a card that passes
//! [`payment_api::validate_card`] is charged. The full card number and the CVV are neither
//! stored nor logged; a charge keeps the card's brand and last four digits. A refund is one
//! conditional update (`charged` to `refunded`) inside a transaction, so concurrent refunds of
//! one charge refund it once and all return the same `refunded_at`.

mod entity;

use cleave_kernel::module;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use cleave_domain::Money;
use cleave_kernel::CallContext;
use payment_api::{
    CardBrand, Charge, ChargeRequest, ChargeStatus, PaymentApi, PaymentError, validate_amount,
    validate_card, validate_reference, year_month_utc,
};
use sea_orm::sea_query::value::prelude::chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.payment]`: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentConfig {}

/// What the payment module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct PaymentDeps;

/// The payment module, in process.
#[module(contract = payment_api::PaymentContract, config = PaymentConfig, owns = "charges",
    start = Ok(PaymentModule::new(start.db()?, start.config(), PaymentDeps)))]
pub struct PaymentModule {
    db: DatabaseConnection,
}

impl PaymentModule {
    /// The module over its (migrated) database.
    pub fn new(db: DatabaseConnection, _config: &PaymentConfig, _deps: PaymentDeps) -> Arc<Self> {
        Arc::new(Self { db })
    }
}

fn storage_error(err: DbErr) -> PaymentError {
    cleave_kernel::db::storage_error(&err)
}

/// A time as stored: to the microsecond, which is what PostgreSQL keeps, so that what a call
/// returns equals what later reads return.
fn stored_time(at: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(at).trunc_subsecs(6)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn corrupt(what: &str, raw: &str) -> PaymentError {
    PaymentError::Internal {
        reason: format!("unknown {what} {raw:?} in payment_charges"),
    }
}

fn to_charge(row: entity::Model) -> Result<Charge, PaymentError> {
    let card_brand = [CardBrand::Visa, CardBrand::MasterCard]
        .into_iter()
        .find(|b| b.as_str() == row.card_brand)
        .ok_or_else(|| corrupt("card brand", &row.card_brand))?;
    let status = [ChargeStatus::Charged, ChargeStatus::Refunded]
        .into_iter()
        .find(|s| s.as_str() == row.status)
        .ok_or_else(|| corrupt("status", &row.status))?;
    Ok(Charge {
        transaction_id: row.transaction_id,
        amount: Money {
            currency_code: row.amount_currency,
            units: row.amount_units,
            nanos: row.amount_nanos,
        },
        card_brand,
        card_last4: row.card_last4,
        status,
        created_at: rfc3339(row.created_at),
        refunded_at: row.refunded_at.map(rfc3339),
        reference: row.reference,
    })
}

#[async_trait]
impl PaymentApi for PaymentModule {
    async fn charge(&self, _ctx: &CallContext, req: ChargeRequest) -> Result<Charge, PaymentError> {
        let ChargeRequest {
            amount,
            card,
            reference,
        } = req;
        validate_amount(&amount)?;
        if let Some(r) = &reference {
            validate_reference(r)?;
        }
        let now = SystemTime::now();
        let (year, month) = year_month_utc(now);
        let brand = validate_card(&card, year, month)?;
        // Only these two facts of the card go further: into the row, the answer and the log.
        let card_last4 = card.last4();
        let transaction_id = uuid::Uuid::now_v7().to_string();
        let created_at = stored_time(now);
        let row = entity::ActiveModel {
            transaction_id: ActiveValue::Set(transaction_id.clone()),
            amount_currency: ActiveValue::Set(amount.currency_code.clone()),
            amount_units: ActiveValue::Set(amount.units),
            amount_nanos: ActiveValue::Set(amount.nanos),
            card_brand: ActiveValue::Set(brand.as_str().to_owned()),
            card_last4: ActiveValue::Set(card_last4.clone()),
            status: ActiveValue::Set(ChargeStatus::Charged.as_str().to_owned()),
            created_at: ActiveValue::Set(created_at),
            refunded_at: ActiveValue::Set(None),
            reference: ActiveValue::Set(reference.clone()),
        };
        // The unique reference makes a retried charge a no-op that returns the first one.
        let inserted = entity::Entity::insert(row)
            .on_conflict(
                OnConflict::column(entity::Column::Reference)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(storage_error)?;
        if inserted == 0
            && let Some(reference) = reference
        {
            return self.find_charge(_ctx, reference).await;
        }
        tracing::info!(
            transaction_id = %transaction_id,
            card_brand = brand.as_str(),
            card_last4 = %card_last4,
            amount = %amount,
            "card charged"
        );
        Ok(Charge {
            transaction_id,
            amount,
            card_brand: brand,
            card_last4,
            status: ChargeStatus::Charged,
            created_at: rfc3339(created_at),
            refunded_at: None,
            reference,
        })
    }

    async fn refund(
        &self,
        _ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError> {
        let refunded_at = stored_time(SystemTime::now());
        let tx = self.db.begin().await.map_err(storage_error)?;
        // The conditional update comes first: it takes the row's write lock (PostgreSQL) or the
        // database's (SQLite) before anything is read, so of concurrent refunds exactly one
        // moves the charge to refunded and the others find it done and change nothing.
        let updated = entity::Entity::update_many()
            .col_expr(
                entity::Column::Status,
                Expr::value(ChargeStatus::Refunded.as_str()),
            )
            .col_expr(entity::Column::RefundedAt, Expr::value(refunded_at))
            .filter(entity::Column::TransactionId.eq(transaction_id.as_str()))
            .filter(entity::Column::Status.eq(ChargeStatus::Charged.as_str()))
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        let row = entity::Entity::find_by_id(transaction_id.clone())
            .one(&tx)
            .await
            .map_err(storage_error)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(storage_error)?;
            return Err(PaymentError::TransactionNotFound { transaction_id });
        };
        tx.commit().await.map_err(storage_error)?;
        if updated.rows_affected > 0 {
            tracing::info!(transaction_id = %row.transaction_id, "charge refunded");
        }
        to_charge(row)
    }

    async fn get_charge(
        &self,
        _ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError> {
        let row = entity::Entity::find_by_id(transaction_id.clone())
            .one(&self.db)
            .await
            .map_err(storage_error)?;
        match row {
            Some(row) => to_charge(row),
            None => Err(PaymentError::TransactionNotFound { transaction_id }),
        }
    }

    async fn find_charge(
        &self,
        _ctx: &CallContext,
        reference: String,
    ) -> Result<Charge, PaymentError> {
        validate_reference(&reference)?;
        let row = entity::Entity::find()
            .filter(entity::Column::Reference.eq(reference.as_str()))
            .one(&self.db)
            .await
            .map_err(storage_error)?;
        match row {
            Some(row) => to_charge(row),
            None => Err(PaymentError::TransactionNotFound {
                transaction_id: reference,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn stored_times_keep_microseconds_and_print_as_utc_rfc3339() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789);
        let stored = stored_time(at);
        assert_eq!(rfc3339(stored), "2025-11-24T16:00:00.123456Z");
    }
}
