use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, string_len, string_len_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No column for the card number or the CVV: they are never stored.
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("payment_charges"))
                    .if_not_exists()
                    .col(string_len(Alias::new("transaction_id"), 64).primary_key())
                    .col(string_len(Alias::new("amount_currency"), 3))
                    .col(big_integer(Alias::new("amount_units")))
                    .col(integer(Alias::new("amount_nanos")))
                    // `visa` or `mastercard`.
                    .col(string_len(Alias::new("card_brand"), 16))
                    .col(string_len(Alias::new("card_last4"), 4))
                    // `charged` or `refunded`.
                    .col(string_len(Alias::new("status"), 16))
                    .col(timestamp_with_time_zone(Alias::new("created_at")))
                    .col(timestamp_with_time_zone_null(Alias::new("refunded_at")))
                    // The caller's reference (an order id): unique, so a retried charge is a
                    // no-op. NULLs never collide.
                    .col(string_len_null(Alias::new("reference"), 64).unique_key())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("payment_charges"))
                    .to_owned(),
            )
            .await
    }
}
