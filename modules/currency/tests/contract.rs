//! The currency contract suite against the module in process and over HTTP.

use std::sync::Arc;

use cleave_kernel::client::{RemoteClient, RemoteSettings};
use cleave_kernel::testing::{TestDb, TestServer, test_databases};
use cleave_migrations::MigratorTrait;
use currency::{CurrencyConfig, CurrencyDeps, CurrencyModule};
use currency_api::{CurrencyApi, CurrencyClient, contract};

async fn start(db: &TestDb) -> Arc<CurrencyModule> {
    let conn = db.connect().await;
    cleave_migrations::currency::Migrator::up(&conn, None)
        .await
        .expect("migrate currency");
    CurrencyModule::new(conn, &CurrencyConfig::default(), CurrencyDeps)
}

#[tokio::test]
async fn currency_in_process_meets_the_contract() {
    for db in test_databases().await {
        let module = start(&db).await;
        contract::run(&format!("in-process/{}", db.backend), module.as_ref()).await;
    }
}

#[tokio::test]
async fn currency_over_http_meets_the_contract() {
    for db in test_databases().await {
        let api: Arc<dyn CurrencyApi> = start(&db).await;
        let server = TestServer::spawn(move |cfg| currency_api::http::configure(cfg, api.clone()));
        let remote = RemoteClient::new(
            "currency",
            server.base_url.clone(),
            &RemoteSettings::default(),
        )
        .expect("client");
        contract::run(
            &format!("http/{}", db.backend),
            &CurrencyClient::new(remote),
        )
        .await;
        server.stop().await;
    }
}
