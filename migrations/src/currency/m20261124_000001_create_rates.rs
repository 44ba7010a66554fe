use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("currency_rates"))
                    .if_not_exists()
                    .col(string_len(Alias::new("code"), 3).primary_key())
                    // Units of this currency per 1 EUR, as an exact decimal string: floats
                    // would drift in conversion.
                    .col(string_len(Alias::new("per_eur"), 32))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("currency_rates")).to_owned())
            .await
    }
}
