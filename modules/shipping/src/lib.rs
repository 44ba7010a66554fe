//! The `shipping` module: shipping quotes, and shipments persisted under their tracking ids.
//!
//! - Owns: table `shipping_shipments` (migrations in `cleave-migrations::shipping`).
//! - Provides: [`shipping_api::ShippingApi`] through [`ShippingModule`].
//! - Requires: nothing.
//!
//! Quotes are computed, never stored ([`shipping_api::quote_for`] is the price rule). A
//! shipment is one insert under a random tracking id in Boutique's form; the id space
//! (26² · 10¹² ≈ 6.8 · 10¹⁴) makes a clash very unlikely, and a clash is retried with a new
//! id rather than failing the order.

mod entity;

use cleave_kernel::module;
use std::sync::Arc;

use async_trait::async_trait;
use cleave_domain::{Address, Money};
use cleave_kernel::CallContext;
use sea_orm::entity::prelude::ChronoUtc;
use sea_orm::{ActiveValue, DatabaseConnection, DbErr, EntityTrait, SqlErr};
use serde::{Deserialize, Serialize};
use shipping_api::{
    Quote, QuoteRequest, ShipOrderRequest, Shipment, ShippingApi, ShippingError, is_tracking_id,
    quote_for, validate_items,
};

/// Settings of `[modules.shipping]`: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShippingConfig {}

/// What the shipping module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct ShippingDeps;

/// The shipping module, in process.
#[module(contract = shipping_api::ShippingContract, config = ShippingConfig, owns = "shipments",
    start = Ok(ShippingModule::new(start.db()?, start.config(), ShippingDeps)))]
pub struct ShippingModule {
    db: DatabaseConnection,
}

impl ShippingModule {
    /// The module over its (migrated) database.
    pub fn new(db: DatabaseConnection, _config: &ShippingConfig, _deps: ShippingDeps) -> Arc<Self> {
        Arc::new(Self { db })
    }
}

/// How many tracking ids `ship_order` tries before it gives up on a run of clashes (which
/// would mean the id generator is broken, not bad luck).
const INSERT_ATTEMPTS: u32 = 3;

fn storage_error(err: DbErr) -> ShippingError {
    cleave_kernel::db::storage_error(&err)
}

/// A new tracking id, `AB-12345-1234567`, drawn from a v4 uuid's 122 random bits.
fn new_tracking_id() -> String {
    let mut bits = uuid::Uuid::new_v4().as_u128();
    let mut take = |base: u128| {
        let digit = bits % base;
        bits /= base;
        digit
    };
    let letter = |d: u128| char::from(b'A' + u8::try_from(d).unwrap_or(0));
    let (a, b) = (letter(take(26)), letter(take(26)));
    let (middle, tail) = (take(100_000), take(10_000_000));
    format!("{a}{b}-{middle:05}-{tail:07}")
}

/// Now, as RFC 3339 in UTC with microseconds: what both databases store exactly.
fn now_rfc3339() -> String {
    ChronoUtc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn to_row(s: &Shipment) -> entity::ActiveModel {
    entity::ActiveModel {
        tracking_id: ActiveValue::Set(s.tracking_id.clone()),
        street_address: ActiveValue::Set(s.address.street_address.clone()),
        city: ActiveValue::Set(s.address.city.clone()),
        state: ActiveValue::Set(s.address.state.clone()),
        country: ActiveValue::Set(s.address.country.clone()),
        zip_code: ActiveValue::Set(s.address.zip_code.clone()),
        item_count: ActiveValue::Set(s.item_count),
        cost_currency_code: ActiveValue::Set(s.cost.currency_code.clone()),
        cost_units: ActiveValue::Set(s.cost.units),
        cost_nanos: ActiveValue::Set(s.cost.nanos),
        created_at: ActiveValue::Set(s.created_at.clone()),
    }
}

fn from_row(row: entity::Model) -> Result<Shipment, ShippingError> {
    let cost =
        Money::new(&row.cost_currency_code, row.cost_units, row.cost_nanos).map_err(|e| {
            ShippingError::Internal {
                reason: format!("shipment {} has a bad cost: {e}", row.tracking_id),
            }
        })?;
    Ok(Shipment {
        tracking_id: row.tracking_id,
        address: Address {
            street_address: row.street_address,
            city: row.city,
            state: row.state,
            country: row.country,
            zip_code: row.zip_code,
        },
        item_count: row.item_count,
        cost,
        created_at: row.created_at,
    })
}

fn is_clash(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[async_trait]
impl ShippingApi for ShippingModule {
    async fn get_quote(
        &self,
        _ctx: &CallContext,
        req: QuoteRequest,
    ) -> Result<Quote, ShippingError> {
        let item_count = validate_items(&req.address, &req.items)?;
        Ok(Quote {
            cost: quote_for(item_count),
        })
    }

    async fn ship_order(
        &self,
        _ctx: &CallContext,
        req: ShipOrderRequest,
    ) -> Result<Shipment, ShippingError> {
        let item_count = validate_items(&req.address, &req.items)?;
        if req.items.is_empty() {
            return Err(ShippingError::NoItems);
        }
        let mut shipment = Shipment {
            tracking_id: new_tracking_id(),
            address: req.address,
            item_count,
            cost: quote_for(item_count),
            created_at: now_rfc3339(),
        };
        let mut attempt = 1;
        loop {
            match entity::Entity::insert(to_row(&shipment))
                .exec_without_returning(&self.db)
                .await
            {
                Ok(_) => break,
                Err(err) if attempt < INSERT_ATTEMPTS && is_clash(&err) => {
                    tracing::warn!(tracking_id = %shipment.tracking_id, "tracking id clash, drawing another");
                    shipment.tracking_id = new_tracking_id();
                    attempt += 1;
                }
                Err(err) => return Err(storage_error(err)),
            }
        }
        tracing::info!(
            tracking_id = %shipment.tracking_id,
            item_count,
            cost = %shipment.cost,
            "order shipped"
        );
        Ok(shipment)
    }

    async fn get_shipment(
        &self,
        _ctx: &CallContext,
        tracking_id: String,
    ) -> Result<Shipment, ShippingError> {
        // Malformed ids cannot be stored; do not send them to the database.
        if !is_tracking_id(&tracking_id) {
            return Err(ShippingError::ShipmentNotFound { tracking_id });
        }
        let row = entity::Entity::find_by_id(tracking_id.clone())
            .one(&self.db)
            .await
            .map_err(storage_error)?;
        match row {
            Some(row) => from_row(row),
            None => Err(ShippingError::ShipmentNotFound { tracking_id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tracking_ids_have_boutiques_form_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_tracking_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(is_tracking_id(id), "{id}");
        }
    }

    #[test]
    fn tracking_ids_use_every_letter() {
        let firsts: std::collections::HashSet<char> = (0..2000)
            .filter_map(|_| new_tracking_id().chars().next())
            .collect();
        assert_eq!(firsts.len(), 26, "{firsts:?}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_fixed_width() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 27, "{now}");
        assert_eq!(&now[10..11], "T", "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }
}
