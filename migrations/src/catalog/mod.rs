//! Migrations of the catalog module.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_products;
mod m20261124_000002_seed_products;

/// The catalog's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_products::Migration),
            Box::new(m20261124_000002_seed_products::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_catalog").into_iden()
    }
}
