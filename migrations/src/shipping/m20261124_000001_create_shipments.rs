use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string_len};

/// Longest address field, in characters (`cleave_domain::MAX_ADDRESS_FIELD`).
const ADDRESS_FIELD: u32 = 200;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("shipping_shipments"))
                    .if_not_exists()
                    // `AB-12345-1234567`.
                    .col(string_len(Alias::new("tracking_id"), 16).primary_key())
                    .col(string_len(Alias::new("street_address"), ADDRESS_FIELD))
                    .col(string_len(Alias::new("city"), ADDRESS_FIELD))
                    .col(string_len(Alias::new("state"), ADDRESS_FIELD))
                    .col(string_len(Alias::new("country"), ADDRESS_FIELD))
                    .col(string_len(Alias::new("zip_code"), ADDRESS_FIELD))
                    .col(big_integer(Alias::new("item_count")))
                    .col(string_len(Alias::new("cost_currency_code"), 3))
                    .col(big_integer(Alias::new("cost_units")))
                    .col(integer(Alias::new("cost_nanos")))
                    // RFC 3339 in UTC with microseconds, always the same width: the same text
                    // on SQLite and PostgreSQL, returned exactly as stored, and it sorts as
                    // time does.
                    .col(string_len(Alias::new("created_at"), 32))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("shipping_shipments"))
                    .to_owned(),
            )
            .await
    }
}
