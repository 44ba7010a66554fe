use sea_orm_migration::prelude::*;
use crate::schema::{drop_tables, name};
use sea_orm_migration::schema::{integer, string_len};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(name("cart_items"))
                .if_not_exists()
                .col(string_len(name("user_id"), 128))
                .col(string_len(name("product_id"), 64))
                .col(integer(name("quantity")))
                .primary_key(Index::create().col(name("user_id")).col(name("product_id")))
                .to_owned(),
        )
        .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(manager, &["cart_items"]).await
}
