//! Migrations of the shipping module.

crate::schema::migrator!(
    /// The shipping module's migrator.
    "seaql_migrations_shipping",
    [m20261124_000001_create_shipments]
);
