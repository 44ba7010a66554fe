//! The catalog contract suite against the module in process, over HTTP, and against the fake.

use std::sync::Arc;

use catalog::{CatalogConfig, CatalogDeps, CatalogModule};
use catalog_api::{CatalogApi, CatalogClient, contract, fake::FakeCatalog};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteSettings};
use cleave_kernel::testing::{TestDb, TestKeys, TestServer, test_databases};
use cleave_kernel::types::ProductId;
use cleave_migrations::MigratorTrait;
use sea_orm::ConnectionTrait;

async fn start(db: &TestDb) -> Arc<CatalogModule> {
    let conn = db.connect().await;
    cleave_migrations::catalog::Migrator::up(&conn, None)
        .await
        .expect("migrate catalog");
    CatalogModule::start(conn, &CatalogConfig { refresh_secs: 0 }, CatalogDeps)
        .await
        .expect("start catalog")
}

#[tokio::test]
async fn catalog_in_process_meets_the_contract() {
    for db in test_databases().await {
        let module = start(&db).await;
        contract::run(&format!("in-process/{}", db.backend), module.as_ref()).await;
        let keys = TestKeys::new();
        contract::run_admin(
            &format!("in-process/{}", db.backend),
            module.as_ref(),
            &as_role(&keys, "admin"),
            &as_role(&keys, "shopper"),
        )
        .await;
    }
}

fn as_role(keys: &TestKeys, role: &str) -> CallContext {
    CallContext::root().with_principal(keys.principal("catalog-test-user", &[role]))
}

#[tokio::test]
async fn catalog_over_http_meets_the_contract() {
    for db in test_databases().await {
        let api: Arc<dyn CatalogApi> = start(&db).await;
        let keys = TestKeys::new();
        let auth = keys.authenticator();
        let server = TestServer::spawn(move |cfg| {
            cfg.app_data(actix_web::web::Data::from(auth.clone()));
            catalog_api::http::configure(cfg, api.clone());
        });
        let remote = RemoteClient::new(
            "catalog",
            server.base_url.clone(),
            &RemoteSettings::default(),
        )
        .expect("client");
        let client = CatalogClient::new(remote);
        contract::run(&format!("http/{}", db.backend), &client).await;
        contract::run_admin(
            &format!("http/{}", db.backend),
            &client,
            &as_role(&keys, "admin"),
            &as_role(&keys, "shopper"),
        )
        .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn fake_catalog_meets_the_contract() {
    let fake = FakeCatalog::default();
    contract::run("fake", &fake).await;
    let keys = TestKeys::new();
    contract::run_admin(
        "fake",
        &fake,
        &as_role(&keys, "admin"),
        &as_role(&keys, "shopper"),
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
