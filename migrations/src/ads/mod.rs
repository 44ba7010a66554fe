//! Migrations of the ads module.

crate::schema::migrator!(
    /// The ads module's migrator.
    "seaql_migrations_ads",
    [m20261124_000001_create_ads, m20261124_000002_seed_ads]
);
