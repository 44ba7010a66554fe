//! The catalog contract suite against the module in process, over HTTP, and against the fake.

use catalog::{CatalogConfig, CatalogDeps, CatalogModule};
use catalog_api::{CatalogApi, CatalogContract, contract, fake::FakeCatalog};
use cleave_domain::ProductId;
use cleave_kernel::CallContext;
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, TestKeys, at_the_edge, test_databases};
use cleave_migrations::catalog::Migrator;
use sea_orm::ConnectionTrait;

fn harness() -> ContractHarness<CatalogModule> {
    ContractHarness::new::<Migrations<Migrator>>()
        .with_migrations::<Migrations<cleave_migrations::events::Migrator>>()
        .config(CatalogConfig { refresh_secs: 0 })
}

async fn start(db: &TestDb) -> std::sync::Arc<CatalogModule> {
    CatalogModule::start(
        harness().migrated(db).await,
        &CatalogConfig { refresh_secs: 0 },
        CatalogDeps,
        cleave_kernel::events::Relay::disabled(),
    )
    .await
    .expect("start catalog")
}

#[tokio::test]
async fn catalog_meets_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move {
            contract::run(&p.label, p.api.as_ref()).await;
            let (admin, shopper) = (
                p.as_user("catalog-test-user", &["admin"]),
                p.as_user("catalog-test-user", &["shopper"]),
            );
            contract::run_admin(&p.label, p.api.as_ref(), &admin, &shopper).await;
        })
        .await;
}

#[tokio::test]
async fn fake_catalog_meets_the_contract() {
    let fake = at_the_edge::<CatalogContract>(std::sync::Arc::new(FakeCatalog::default()));
    contract::run("fake", fake.as_ref()).await;
    let keys = TestKeys::new();
    let as_role =
        |role| CallContext::root().with_principal(keys.principal("catalog-test-user", &[role]));
    contract::run_admin(
        "fake",
        fake.as_ref(),
        &as_role("admin"),
        &as_role("shopper"),
    )
    .await;
}

#[tokio::test]
async fn reload_picks_up_products_written_by_another_process() {
    for db in test_databases().await {
        let module = start(&db).await;
        let id = ProductId::parse("NEW0000001").expect("id");
        let ctx = CallContext::root();
        assert!(
            module.get_product(&ctx, id.clone()).await.is_err(),
            "{}",
            db.backend
        );
        let conn = db.connect().await;
        conn.execute_unprepared(
            "INSERT INTO catalog_products (id, name, description, picture, price_currency_code, \
             price_units, price_nanos, categories) VALUES ('NEW0000001', 'Kettle', 'Boils water', \
             '/static/img/products/NEW0000001.svg', 'USD', 30, 0, '[\"kitchen\"]')",
        )
        .await
        .expect("insert");
        module.reload().await.expect("reload");
        let kettle = module
            .get_product(&ctx, id)
            .await
            .expect("kettle after reload");
        assert_eq!(kettle.name, "Kettle", "{}", db.backend);
    }
}
