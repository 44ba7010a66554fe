use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, string_len};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("ads_ads"))
                    .if_not_exists()
                    .col(string_len(Alias::new("id"), 64).primary_key())
                    // Lower-case category name, e.g. `kitchen`.
                    .col(string_len(Alias::new("category"), 64))
                    .col(string(Alias::new("redirect_url")))
                    .col(string(Alias::new("text")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ads_ads_category")
                    .table(Alias::new("ads_ads"))
                    .col(Alias::new("category"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("ads_ads")).to_owned())
            .await
    }
}
