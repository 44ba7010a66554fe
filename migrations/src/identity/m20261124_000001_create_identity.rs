use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len, text};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("identity_users"))
                    .if_not_exists()
                    .col(string_len(Alias::new("user_id"), 36).primary_key())
                    .col(string_len(Alias::new("email"), 254).unique_key())
                    .col(text(Alias::new("password_hash")))
                    .col(string_len(Alias::new("roles"), 255))
                    .col(big_integer(Alias::new("created_at_ms")))
                    .col(big_integer_null(Alias::new("deleted_at_ms")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("identity_refresh_tokens"))
                    .if_not_exists()
                    // SHA-256 hex of the token; the token itself is never stored.
                    .col(string_len(Alias::new("token_hash"), 64).primary_key())
                    .col(string_len(Alias::new("family_id"), 36))
                    .col(string_len(Alias::new("user_id"), 36))
                    .col(big_integer(Alias::new("issued_at_ms")))
                    .col(big_integer(Alias::new("expires_at_ms")))
                    .col(big_integer_null(Alias::new("used_at_ms")))
                    .col(big_integer_null(Alias::new("revoked_at_ms")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("identity_refresh_tokens_family")
                    .table(Alias::new("identity_refresh_tokens"))
                    .if_not_exists()
                    .col(Alias::new("family_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("identity_refresh_tokens_user")
                    .table(Alias::new("identity_refresh_tokens"))
                    .if_not_exists()
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("identity_signing_keys"))
                    .if_not_exists()
                    .col(string_len(Alias::new("kid"), 36).primary_key())
                    .col(text(Alias::new("private_pkcs8")))
                    .col(string_len(Alias::new("public_x"), 64))
                    .col(big_integer(Alias::new("created_at_ms")))
                    .col(big_integer_null(Alias::new("retired_at_ms")))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "identity_signing_keys",
            "identity_refresh_tokens",
            "identity_users",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
