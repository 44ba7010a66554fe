use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, string_len};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("cart_items"))
                    .if_not_exists()
                    .col(string_len(Alias::new("user_id"), 128))
                    .col(string_len(Alias::new("product_id"), 64))
                    .col(integer(Alias::new("quantity")))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("user_id"))
                            .col(Alias::new("product_id")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("cart_items")).to_owned())
            .await
    }
}
