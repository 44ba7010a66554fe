//! Migrations of the email module.

crate::schema::migrator!(
    /// The email module's migrator.
    "seaql_migrations_email",
    [m20261124_000001_create_confirmations]
);
