use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{big_integer, string_len, text};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "email_confirmations",
        vec![
            string_len(name("message_id"), 64).primary_key().into(),
            string_len(name("order_id"), 64),
            string_len(name("recipient"), 254),
            text(name("subject")),
            text(name("body")),
            big_integer(name("sent_at_ms")),
        ],
    )
    .await?;
    create_index(manager, "email_confirmations_order", "email_confirmations", &["order_id"], false).await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["email_confirmations"]).await
}
