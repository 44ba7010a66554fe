//! The recommendation contract suite in process and over HTTP, with the catalog in process and
//! over HTTP (the fake catalog: this crate may not name the catalog's implementation; the root
//! crate's end-to-end tests run the real one), plus what happens when the catalog is down.

use std::sync::Arc;

use catalog_api::fake::FakeCatalog;
use catalog_api::{CatalogApi, CatalogClient, CatalogContract};
use cleave_domain::{ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteSettings};
use cleave_kernel::module::NoTables;
use cleave_kernel::testing::{ContractHarness, TestKeys, TestServer};
use recommendation::{RecommendationConfig, RecommendationDeps, RecommendationModule};
use recommendation_api::{
    RecommendationApi, RecommendationContract, RecommendationError, contract,
};

fn catalog() -> Arc<dyn CatalogApi> {
    Arc::new(FakeCatalog::default())
}

fn module(catalog: Arc<dyn CatalogApi>) -> Arc<RecommendationModule> {
    RecommendationModule::new(
        &RecommendationConfig::default(),
        RecommendationDeps { catalog },
    )
}

#[tokio::test]
async fn recommendation_meets_the_contract_in_process_and_over_http() {
    ContractHarness::<RecommendationModule>::new::<NoTables>()
        .provide(|asm| asm.provide::<CatalogContract>(catalog()))
        .run(|p| async move { contract::run(&p.label, p.api.as_ref()).await })
        .await;
}

#[tokio::test]
async fn recommendation_over_http_with_a_remote_catalog_meets_the_contract() {
    // The catalog in one server, recommendation in another calling it over HTTP.
    let keys = TestKeys::new();
    let catalog_server = TestServer::serve::<CatalogContract>(catalog(), &keys);
    let rec: Arc<dyn RecommendationApi> = module(catalog_server.client::<CatalogContract>());
    let rec_server = TestServer::serve::<RecommendationContract>(rec, &keys);
    let client = rec_server.client::<RecommendationContract>();
    contract::run("http", client.as_ref()).await;
    rec_server.stop().await;
    catalog_server.stop().await;
}

#[tokio::test]
async fn answers_are_the_same_whether_the_catalog_is_local_or_remote() {
    let catalog = catalog();
    let local = module(catalog.clone());
    let server = TestServer::serve::<CatalogContract>(catalog, &TestKeys::new());
    let split = module(server.client::<CatalogContract>());
    let ctx = CallContext::root();
    for u in ["alice", "bob", "carol", "dave"] {
        let user = UserId::parse(u).expect("user");
        let input = vec![ProductId::parse("L9ECAV7KIM").expect("id")];
        let a = local
            .list_recommendations(&ctx, user.clone(), input.clone())
            .await
            .expect("local");
        let b = split
            .list_recommendations(&ctx, user, input)
            .await
            .expect("split");
        assert_eq!(a, b, "user {u}");
    }
    server.stop().await;
}

#[tokio::test]
async fn different_users_get_different_suggestions() {
    let rec = module(Arc::new(FakeCatalog::default()));
    let ctx = CallContext::root();
    let mut seen = std::collections::HashSet::new();
    for i in 0..10 {
        let user = UserId::parse(format!("user-{i}")).expect("user");
        seen.insert(
            rec.list_recommendations(&ctx, user, vec![])
                .await
                .expect("recs"),
        );
    }
    assert!(seen.len() > 1, "ten users all got the same five products");
}

#[tokio::test]
async fn an_unreachable_catalog_makes_recommendations_unavailable() {
    // Port 1 (tcpmux): privileged, so no test server can take it; nothing listens there.
    let port: u16 = 1;
    let url = url_for(port);
    let catalog = CatalogClient::new(
        RemoteClient::new("catalog", url, &RemoteSettings::default()).expect("client"),
    );
    let rec = module(Arc::new(catalog));
    let user = UserId::parse("u").expect("user");
    match rec
        .list_recommendations(&CallContext::root(), user, vec![])
        .await
    {
        Err(RecommendationError::Unavailable { .. }) => {}
        other => panic!("expected unavailable, got {other:?}"),
    }
}

fn url_for(port: u16) -> cleave_kernel::client::Url {
    cleave_kernel::client::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url")
}
