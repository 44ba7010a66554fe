use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, integer, string_len, text, text_null,
};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("events_outbox"))
                    .if_not_exists()
                    .col(string_len(Alias::new("id"), 36).primary_key())
                    .col(string_len(Alias::new("topic"), 128))
                    .col(text(Alias::new("payload")))
                    .col(string_len(Alias::new("request_id"), 128))
                    .col(big_integer(Alias::new("created_at_ms")))
                    .col(big_integer_null(Alias::new("published_at_ms")))
                    .col(integer(Alias::new("attempts")))
                    .col(big_integer(Alias::new("next_attempt_at_ms")))
                    .col(text_null(Alias::new("last_error")))
                    .to_owned(),
            )
            .await?;
        // The relay's query: pending events that are due, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("events_outbox_pending")
                    .table(Alias::new("events_outbox"))
                    .if_not_exists()
                    .col(Alias::new("published_at_ms"))
                    .col(Alias::new("next_attempt_at_ms"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("events_outbox")).to_owned())
            .await
    }
}
