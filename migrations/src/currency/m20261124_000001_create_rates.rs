use sea_orm_migration::prelude::*;
use crate::schema::{create_table, drop_tables, name};
use sea_orm_migration::schema::string_len;

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "currency_rates",
        vec![
            string_len(name("code"), 3).primary_key().into(),
            // Units of this currency per 1 EUR, as an exact decimal string: floats
            // would drift in conversion.
            string_len(name("per_eur"), 32),
        ],
    )
    .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["currency_rates"]).await
}
