//! Schema migrations: one sea-orm `Migrator` per module, each tracked in its own table
//! (`seaql_migrations_<module>`), so a module's schema can move to another database with it.
//! The composition root pairs each module with its `Migrator` (`src/modules.rs`).
//! One file per migration (sea-orm derives the migration's name from the file name).

pub mod ads;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod currency;
pub mod email;
pub mod events;
pub mod identity;
pub mod payment;
mod schema;
pub mod shipping;

pub use sea_orm_migration::MigratorTrait;
