//! Migrations of the kernel's event outbox (`events_outbox`), applied in every process that
//! hosts a module publishing events.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_outbox;

/// The outbox's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_create_outbox::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_events").into_iden()
    }
}
