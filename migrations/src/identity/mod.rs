//! Migrations of the identity module.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_identity;

/// The identity module's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_create_identity::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_identity").into_iden()
    }
}
