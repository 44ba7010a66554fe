use sea_orm_migration::prelude::*;
use crate::schema::{create_table, drop_tables, name};
use sea_orm_migration::schema::{big_integer, integer, string, string_len, text};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "catalog_products",
        vec![
            string_len(name("id"), 64).primary_key().into(),
            string(name("name")),
            text(name("description")),
            string(name("picture")),
            string_len(name("price_currency_code"), 3),
            big_integer(name("price_units")),
            integer(name("price_nanos")),
            // JSON array of lower-case category names.
            text(name("categories")),
        ],
    )
    .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["catalog_products"]).await
}
