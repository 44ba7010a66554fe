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

#[cfg(test)]
mod tests {
    use sea_orm_migration::MigratorTrait;

    /// The file stems of `src/<dir>/m*.rs`, sorted: the names the migrations had when they
    /// were applied, which databases record and which must never change.
    fn file_stems(dir: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir);
        let mut stems: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations folder")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".rs")?;
                (stem != "mod").then(|| stem.to_owned())
            })
            .collect();
        stems.sort();
        stems
    }

    fn names<M: MigratorTrait>() -> Vec<String> {
        M::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
    }

    #[test]
    fn every_migration_is_named_by_its_file_and_applied_in_file_order() {
        let all = [
            ("ads", names::<super::ads::Migrator>()),
            ("cart", names::<super::cart::Migrator>()),
            ("catalog", names::<super::catalog::Migrator>()),
            ("checkout", names::<super::checkout::Migrator>()),
            ("currency", names::<super::currency::Migrator>()),
            ("email", names::<super::email::Migrator>()),
            ("events", names::<super::events::Migrator>()),
            ("identity", names::<super::identity::Migrator>()),
            ("payment", names::<super::payment::Migrator>()),
            ("shipping", names::<super::shipping::Migrator>()),
        ];
        for (dir, names) in all {
            assert_eq!(names, file_stems(dir), "migrations of {dir}");
        }
        assert_eq!(
            names::<super::catalog::Migrator>(),
            [
                "m20261124_000001_create_products",
                "m20261124_000002_seed_products"
            ],
            "the names databases recorded before the migrator macro"
        );
    }
}
