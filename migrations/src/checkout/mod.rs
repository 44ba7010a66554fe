//! Migrations of the checkout module.

crate::schema::migrator!(
    /// The checkout module's migrator.
    "seaql_migrations_checkout",
    [m20261124_000001_create_orders]
);
