//! Row of `payment_charges`. Internal: charges leave the module only as `payment_api::Charge`.
//! There is no column for the card number or the CVV, by design: only brand and last four.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_charges")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) transaction_id: String,
    pub(crate) amount_currency: String,
    pub(crate) amount_units: i64,
    pub(crate) amount_nanos: i32,
    pub(crate) card_brand: String,
    pub(crate) card_last4: String,
    pub(crate) status: String,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) refunded_at: Option<DateTimeUtc>,
    #[sea_orm(unique)]
    pub(crate) reference: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
