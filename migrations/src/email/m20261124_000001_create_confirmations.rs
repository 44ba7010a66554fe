use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len, text};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("email_confirmations"))
                    .if_not_exists()
                    .col(string_len(Alias::new("message_id"), 64).primary_key())
                    .col(string_len(Alias::new("order_id"), 64))
                    .col(string_len(Alias::new("recipient"), 254))
                    .col(text(Alias::new("subject")))
                    .col(text(Alias::new("body")))
                    .col(big_integer(Alias::new("sent_at_ms")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_confirmations_order")
                    .table(Alias::new("email_confirmations"))
                    .if_not_exists()
                    .col(Alias::new("order_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("email_confirmations"))
                    .to_owned(),
            )
            .await
    }
}
