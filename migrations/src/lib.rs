//! Schema migrations: one sea-orm `Migrator` per module, each tracked in its own table
//! (`seaql_migrations_<module>`), so a module's schema can move to another database with it.
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
pub mod shipping;

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

/// Applies every pending migration of `module`. Modules without tables have nothing to do.
///
/// # Errors
/// The database error of the first migration that fails (it is rolled back where the
/// database supports transactional DDL).
pub async fn migrate_up(
    db: &sea_orm_migration::sea_orm::DatabaseConnection,
    module: &str,
) -> Result<(), DbErr> {
    match module {
        "catalog" => catalog::Migrator::up(db, None).await,
        "currency" => currency::Migrator::up(db, None).await,
        "cart" => cart::Migrator::up(db, None).await,
        "ads" => ads::Migrator::up(db, None).await,
        "payment" => payment::Migrator::up(db, None).await,
        "shipping" => shipping::Migrator::up(db, None).await,
        "checkout" => checkout::Migrator::up(db, None).await,
        "email" => email::Migrator::up(db, None).await,
        "identity" => identity::Migrator::up(db, None).await,
        "events" => events::Migrator::up(db, None).await,
        _ => Ok(()),
    }
}
