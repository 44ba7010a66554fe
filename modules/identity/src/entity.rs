//! Tables of the identity module.

pub(crate) mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_users")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) user_id: String,
        #[sea_orm(unique)]
        pub(crate) email: String,
        pub(crate) password_hash: String,
        /// Comma-separated.
        pub(crate) roles: String,
        pub(crate) created_at_ms: i64,
        pub(crate) deleted_at_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod refresh_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_refresh_tokens")]
    pub(crate) struct Model {
        /// SHA-256 of the token, hex: the token itself is never stored.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) token_hash: String,
        pub(crate) family_id: String,
        pub(crate) user_id: String,
        pub(crate) issued_at_ms: i64,
        pub(crate) expires_at_ms: i64,
        pub(crate) used_at_ms: Option<i64>,
        pub(crate) revoked_at_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_signing_keys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) kid: String,
        /// PKCS#8 DER of the Ed25519 private key, base64. Secret: never logged.
        pub(crate) private_pkcs8: String,
        /// The public key, base64url (the JWK's `x`).
        pub(crate) public_x: String,
        pub(crate) created_at_ms: i64,
        pub(crate) retired_at_ms: Option<i64>,
    }

    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SigningKey")
                .field("kid", &self.kid)
                .field("created_at_ms", &self.created_at_ms)
                .field("retired_at_ms", &self.retired_at_ms)
                .finish_non_exhaustive()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
