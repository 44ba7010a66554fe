use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len_null;

use crate::schema::name;

/// Each event keeps the W3C `traceparent` of the work that produced it, so that its handlers'
/// spans link to that trace (55 characters in version 00).
pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(name("events_outbox"))
                .add_column(string_len_null(name("traceparent"), 64))
                .to_owned(),
        )
        .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(name("events_outbox"))
                .drop_column(name("traceparent"))
                .to_owned(),
        )
        .await
}
