use sea_orm_migration::prelude::*;
use crate::schema::{create_index, create_table, drop_tables, name};
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len, text};

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    create_table(
        manager,
        "identity_users",
        vec![
            string_len(name("user_id"), 36).primary_key().into(),
            string_len(name("email"), 254).unique_key().into(),
            text(name("password_hash")),
            string_len(name("roles"), 255),
            big_integer(name("created_at_ms")),
            big_integer_null(name("deleted_at_ms")),
        ],
    )
    .await?;
    create_table(
        manager,
        "identity_refresh_tokens",
        vec![
            // SHA-256 hex of the token; the token itself is never stored.
            string_len(name("token_hash"), 64).primary_key().into(),
            string_len(name("family_id"), 36),
            string_len(name("user_id"), 36),
            big_integer(name("issued_at_ms")),
            big_integer(name("expires_at_ms")),
            big_integer_null(name("used_at_ms")),
            big_integer_null(name("revoked_at_ms")),
        ],
    )
    .await?;
    create_index(manager, "identity_refresh_tokens_family", "identity_refresh_tokens", &["family_id"], false).await?;
    create_index(manager, "identity_refresh_tokens_user", "identity_refresh_tokens", &["user_id"], false).await?;
    create_table(
        manager,
        "identity_signing_keys",
        vec![
            string_len(name("kid"), 36).primary_key().into(),
            text(name("private_pkcs8")),
            string_len(name("public_x"), 64),
            big_integer(name("created_at_ms")),
            big_integer_null(name("retired_at_ms")),
        ],
    )
    .await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_tables(
        manager,
        &[
            "identity_signing_keys",
            "identity_refresh_tokens",
            "identity_users",
        ],
    )
    .await
}
