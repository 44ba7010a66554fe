//! The one list of the shop's modules. Everything that concerns every module (placement,
//! configuration, migrations, assembly, routes, the API document, `cleave modules`, the
//! architecture test) loops over [`MODULES`]; nothing else names them all. Adding a module
//! is its crates plus one line here (docs/ARCHITECTURE.md).

use cleave_kernel::module::{Entry, Migrations, ModuleEntry, NoTables};
use cleave_migrations as tables;

/// Every module with its migrations, each listed after the modules it requires.
pub static MODULES: [&dyn ModuleEntry; 11] = [
    &Entry::<identity::IdentityModule, Migrations<tables::identity::Migrator>>::new(),
    &Entry::<catalog::CatalogModule, Migrations<tables::catalog::Migrator>>::new(),
    &Entry::<currency::CurrencyModule, Migrations<tables::currency::Migrator>>::new(),
    &Entry::<cart::CartModule, Migrations<tables::cart::Migrator>>::new(),
    &Entry::<recommendation::RecommendationModule, NoTables>::new(),
    &Entry::<shipping::ShippingModule, Migrations<tables::shipping::Migrator>>::new(),
    &Entry::<payment::PaymentModule, Migrations<tables::payment::Migrator>>::new(),
    &Entry::<ads::AdsModule, Migrations<tables::ads::Migrator>>::new(),
    &Entry::<email::EmailModule, Migrations<tables::email::Migrator>>::new(),
    &Entry::<checkout::CheckoutModule, Migrations<tables::checkout::Migrator>>::new(),
    &Entry::<storefront::Storefront, NoTables>::new(),
];

/// The kernel's own tables (the event outbox): needed where a hosted module publishes or
/// consumes events. `cleave migrate --module events` names them.
pub const EVENTS: &str = "events";

/// Applies the outbox's migrations.
///
/// # Errors
/// The database error of the first migration that fails.
pub async fn migrate_events(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use cleave_kernel::module::MigrationSet;
    Migrations::<tables::events::Migrator>::up(db).await
}

/// The outbox's migrations and whether each is applied.
///
/// # Errors
/// The database error.
pub async fn events_migration_status(
    db: &sea_orm::DatabaseConnection,
) -> Result<Vec<(String, bool)>, sea_orm::DbErr> {
    use cleave_kernel::module::MigrationSet;
    Migrations::<tables::events::Migrator>::status(db).await
}

/// Reverts the outbox's last applied migration.
///
/// # Errors
/// The database error.
pub async fn events_migrate_down_one(
    db: &sea_orm::DatabaseConnection,
) -> Result<(), sea_orm::DbErr> {
    use cleave_kernel::module::MigrationSet;
    Migrations::<tables::events::Migrator>::down_one(db).await
}

/// The module called `name`.
pub fn find(name: &str) -> Option<&'static dyn ModuleEntry> {
    MODULES.iter().copied().find(|e| e.spec().name == name)
}

/// Every module's name, in list order.
pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|e| e.spec().name).collect()
}
