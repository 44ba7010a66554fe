use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{big_integer, string_len, string_len_null, text_null};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "checkout_orders",
        vec![
            string_len(name("order_id"), 36).primary_key().into(),
            string_len(name("user_id"), 128),
            string_len_null(name("idempotency_key"), 255),
            string_len(name("request_hash"), 64),
            string_len(name("status"), 16),
            string_len_null(name("transaction_id"), 64),
            text_null(name("order_json")),
            text_null(name("error_json")),
            big_integer(name("created_at_ms")),
            big_integer(name("updated_at_ms")),
        ],
    )
    .await?;
    // One attempt per user and key (NULL keys never collide, on SQLite and PostgreSQL).
    create_index(manager, "checkout_orders_idempotency", "checkout_orders", &["user_id", "idempotency_key"], true).await?;
    // Order history, and recovery's search for stale pending attempts.
    create_index(manager, "checkout_orders_user", "checkout_orders", &["user_id", "created_at_ms"], false).await?;
    create_index(manager, "checkout_orders_status", "checkout_orders", &["status", "updated_at_ms"], false).await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["checkout_orders"]).await
}
