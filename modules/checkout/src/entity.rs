//! Table `checkout_orders`: one row per checkout attempt, the saga's log. Only rows with
//! status `placed` are orders; `pending` ones are in flight (or were cut off by a crash and
//! wait for recovery); `unsettled` ones failed and could not be undone yet (a dependency was
//! down): the next repeat of their key, or the next recovery pass, undoes them; `failed` ones
//! keep their error for idempotent replays.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "checkout_orders")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) order_id: String,
    pub(crate) user_id: String,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) request_hash: String,
    pub(crate) status: String,
    pub(crate) transaction_id: Option<String>,
    pub(crate) order_json: Option<String>,
    pub(crate) error_json: Option<String>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub(crate) const PENDING: &str = "pending";
pub(crate) const PLACED: &str = "placed";
pub(crate) const FAILED: &str = "failed";
pub(crate) const UNSETTLED: &str = "unsettled";
