use sea_orm_migration::prelude::*;
use crate::schema::{create_table, drop_tables, name};
use sea_orm_migration::schema::{
    big_integer, integer, string_len, string_len_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // No column for the card number or the CVV: they are never stored.
    create_table(
        manager,
        "payment_charges",
        vec![
            string_len(name("transaction_id"), 64).primary_key().into(),
            string_len(name("amount_currency"), 3),
            big_integer(name("amount_units")),
            integer(name("amount_nanos")),
            // `visa` or `mastercard`.
            string_len(name("card_brand"), 16),
            string_len(name("card_last4"), 4),
            // `charged` or `refunded`.
            string_len(name("status"), 16),
            timestamp_with_time_zone(name("created_at")),
            timestamp_with_time_zone_null(name("refunded_at")),
            // The caller's reference (an order id): unique, so a retried charge is a
            // no-op. NULLs never collide.
            string_len_null(name("reference"), 64).unique_key().into(),
        ],
    )
    .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["payment_charges"]).await
}
