//! The recommendation contract suite in process and over HTTP, with the catalog in process and
//! over HTTP (the fake catalog: this crate may not name the catalog's implementation; the root
//! crate's end-to-end tests run the real one), plus what happens when the catalog is down.

use std::sync::Arc;

use catalog_api::fake::FakeCatalog;
use catalog_api::{CatalogApi, CatalogClient};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteSettings};
use cleave_kernel::testing::TestServer;
use cleave_kernel::types::{ProductId, UserId};
use recommendation::{RecommendationConfig, RecommendationDeps, RecommendationModule};
use recommendation_api::{RecommendationApi, RecommendationClient, RecommendationError, contract};

fn catalog() -> Arc<dyn CatalogApi> {
    Arc::new(FakeCatalog::default())
}

fn module(catalog: Arc<dyn CatalogApi>) -> Arc<RecommendationModule> {
    RecommendationModule::new(
        &RecommendationConfig::default(),
        RecommendationDeps { catalog },
    )
}

fn remote(module: &'static str, server: &TestServer) -> RemoteClient {
    RemoteClient::new(module, server.base_url.clone(), &RemoteSettings::default()).expect("client")
}

#[tokio::test]
async fn recommendation_in_process_meets_the_contract() {
    contract::run("in-process", module(catalog()).as_ref()).await;
}

#[tokio::test]
async fn recommendation_over_http_with_remote_catalog_meets_the_contract() {
    {
        // catalog in one server, recommendation in another calling it over HTTP.
        let catalog = catalog();
        let catalog_server =
            TestServer::spawn(move |cfg| catalog_api::http::configure(cfg, catalog.clone()));
        let catalog_client: Arc<dyn CatalogApi> =
            Arc::new(CatalogClient::new(remote("catalog", &catalog_server)));
        let rec: Arc<dyn RecommendationApi> = module(catalog_client);
        let rec_server =
            TestServer::spawn(move |cfg| recommendation_api::http::configure(cfg, rec.clone()));
        let client = RecommendationClient::new(remote("recommendation", &rec_server));
        contract::run("http", &client).await;
        rec_server.stop().await;
        catalog_server.stop().await;
    }
}

#[tokio::test]
async fn answers_are_the_same_whether_the_catalog_is_local_or_remote() {
    let catalog = catalog();
    let local = module(catalog.clone());
    let server = TestServer::spawn(move |cfg| catalog_api::http::configure(cfg, catalog.clone()));
    let split = module(Arc::new(CatalogClient::new(remote("catalog", &server))));
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
