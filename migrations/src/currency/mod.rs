//! Migrations of the currency module.

crate::schema::migrator!(
    /// The currency module's migrator.
    "seaql_migrations_currency",
    [m20261124_000001_create_rates, m20261124_000002_seed_rates]
);

/// The currency codes the migrations seed: the codes every currency module of this version
/// supports (what `config check` holds `modules.storefront.default_currency` to).
pub fn seeded_codes() -> impl Iterator<Item = &'static str> {
    m20261124_000002_seed_rates::RATES
        .iter()
        .map(|(code, _)| *code)
}
