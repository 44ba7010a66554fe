//! Migrations of the currency module.

crate::schema::migrator!(
    /// The currency module's migrator.
    "seaql_migrations_currency",
    [m20261124_000001_create_rates, m20261124_000002_seed_rates]
);
