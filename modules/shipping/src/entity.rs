//! Row of `shipping_shipments`. Internal to the module.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "shipping_shipments")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) tracking_id: String,
    pub(crate) street_address: String,
    pub(crate) city: String,
    pub(crate) state: String,
    pub(crate) country: String,
    pub(crate) zip_code: String,
    pub(crate) item_count: i64,
    pub(crate) cost_currency_code: String,
    pub(crate) cost_units: i64,
    pub(crate) cost_nanos: i32,
    // RFC 3339, UTC, microseconds.
    pub(crate) created_at: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
