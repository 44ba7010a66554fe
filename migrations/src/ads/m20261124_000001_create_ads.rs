use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{string, string_len};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
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

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["ads_ads"]).await
}
