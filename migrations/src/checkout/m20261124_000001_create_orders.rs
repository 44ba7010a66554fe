use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len, string_len_null, text_null};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = || Alias::new("checkout_orders");
        manager
            .create_table(
                Table::create()
                    .table(table())
                    .if_not_exists()
                    .col(string_len(Alias::new("order_id"), 36).primary_key())
                    .col(string_len(Alias::new("user_id"), 128))
                    .col(string_len_null(Alias::new("idempotency_key"), 255))
                    .col(string_len(Alias::new("request_hash"), 64))
                    .col(string_len(Alias::new("status"), 16))
                    .col(string_len_null(Alias::new("transaction_id"), 64))
                    .col(text_null(Alias::new("order_json")))
                    .col(text_null(Alias::new("error_json")))
                    .col(big_integer(Alias::new("created_at_ms")))
                    .col(big_integer(Alias::new("updated_at_ms")))
                    .to_owned(),
            )
            .await?;
        // One attempt per user and key (NULL keys never collide, on SQLite and PostgreSQL).
        manager
            .create_index(
                Index::create()
                    .name("checkout_orders_idempotency")
                    .table(table())
                    .if_not_exists()
                    .unique()
                    .col(Alias::new("user_id"))
                    .col(Alias::new("idempotency_key"))
                    .to_owned(),
            )
            .await?;
        // Order history, and recovery's search for stale pending attempts.
        manager
            .create_index(
                Index::create()
                    .name("checkout_orders_user")
                    .table(table())
                    .if_not_exists()
                    .col(Alias::new("user_id"))
                    .col(Alias::new("created_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("checkout_orders_status")
                    .table(table())
                    .if_not_exists()
                    .col(Alias::new("status"))
                    .col(Alias::new("updated_at_ms"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("checkout_orders"))
                    .to_owned(),
            )
            .await
    }
}
