//! Migrations of the checkout module.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_orders;

/// The checkout module's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_create_orders::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_checkout").into_iden()
    }
}
