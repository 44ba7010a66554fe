//! Migrations of the ads module.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_ads;
mod m20261124_000002_seed_ads;

/// The ads module's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_ads::Migration),
            Box::new(m20261124_000002_seed_ads::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_ads").into_iden()
    }
}
