use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, string_len, text};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("catalog_products"))
                    .if_not_exists()
                    .col(string_len(Alias::new("id"), 64).primary_key())
                    .col(string(Alias::new("name")))
                    .col(text(Alias::new("description")))
                    .col(string(Alias::new("picture")))
                    .col(string_len(Alias::new("price_currency_code"), 3))
                    .col(big_integer(Alias::new("price_units")))
                    .col(integer(Alias::new("price_nanos")))
                    // JSON array of lower-case category names.
                    .col(text(Alias::new("categories")))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("catalog_products"))
                    .to_owned(),
            )
            .await
    }
}
