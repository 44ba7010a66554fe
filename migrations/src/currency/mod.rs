//! Migrations of the currency module.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_rates;
mod m20261124_000002_seed_rates;

/// The currency module's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_rates::Migration),
            Box::new(m20261124_000002_seed_rates::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_currency").into_iden()
    }
}
