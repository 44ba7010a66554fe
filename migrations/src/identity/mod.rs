//! Migrations of the identity module.

crate::schema::migrator!(
    /// The identity module's migrator.
    "seaql_migrations_identity",
    [m20261124_000001_create_identity]
);
