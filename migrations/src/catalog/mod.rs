//! Migrations of the catalog module.

crate::schema::migrator!(
    /// The catalog's migrator.
    "seaql_migrations_catalog",
    [m20261124_000001_create_products, m20261124_000002_seed_products]
);
