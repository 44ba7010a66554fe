use sea_orm_migration::prelude::*;
use crate::schema::{create_table, drop_tables, name};
use sea_orm_migration::schema::{big_integer, integer, string_len};

/// Longest address field, in characters (`cleave_domain::MAX_ADDRESS_FIELD`).
const ADDRESS_FIELD: u32 = 200;

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "shipping_shipments",
        vec![
            // `AB-12345-1234567`.
            string_len(name("tracking_id"), 16).primary_key().into(),
            string_len(name("street_address"), ADDRESS_FIELD),
            string_len(name("city"), ADDRESS_FIELD),
            string_len(name("state"), ADDRESS_FIELD),
            string_len(name("country"), ADDRESS_FIELD),
            string_len(name("zip_code"), ADDRESS_FIELD),
            big_integer(name("item_count")),
            string_len(name("cost_currency_code"), 3),
            big_integer(name("cost_units")),
            integer(name("cost_nanos")),
            // RFC 3339 in UTC with microseconds, always the same width: the same text
            // on SQLite and PostgreSQL, returned exactly as stored, and it sorts as
            // time does.
            string_len(name("created_at"), 32),
        ],
    )
    .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["shipping_shipments"]).await
}
