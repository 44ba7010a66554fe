use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{
    big_integer, big_integer_null, integer, string_len, text, text_null,
};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "events_outbox",
        vec![
            string_len(name("id"), 36).primary_key().into(),
            string_len(name("topic"), 128),
            text(name("payload")),
            string_len(name("request_id"), 128),
            big_integer(name("created_at_ms")),
            big_integer_null(name("published_at_ms")),
            integer(name("attempts")),
            big_integer(name("next_attempt_at_ms")),
            text_null(name("last_error")),
        ],
    )
    .await?;
    // The relay's query: pending events that are due, oldest first.
    create_index(manager, "events_outbox_pending", "events_outbox", &["published_at_ms", "next_attempt_at_ms"], false).await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["events_outbox"]).await
}
