use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{string, string_len};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            "ads_ads",
            vec![
                string_len(name("id"), 64).primary_key().into(),
                // Lower-case category name, e.g. `kitchen`.
                string_len(name("category"), 64),
                string(name("redirect_url")),
                string(name("text")),
            ],
        )
        .await?;
        create_index(manager, "idx_ads_ads_category", "ads_ads", &["category"], false).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["ads_ads"]).await
    }
}
