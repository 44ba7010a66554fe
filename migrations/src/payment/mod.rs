//! Migrations of the payment module.

crate::schema::migrator!(
    /// The payment module's migrator.
    "seaql_migrations_payment",
    [m20261124_000001_create_charges]
);
