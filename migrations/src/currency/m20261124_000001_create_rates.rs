use sea_orm_migration::prelude::*;
use crate::schema::{create_table, drop_tables, name};
use sea_orm_migration::schema::string_len;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["currency_rates"]).await
    }
}
