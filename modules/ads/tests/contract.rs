//! The ads contract suite against the module in process and over HTTP, plus what the server
//! checks on its own and what a restart picks up.

use std::sync::Arc;

use ads::{AdsConfig, AdsDeps, AdsModule};
use ads_api::{Ad, Ads, AdsApi, AdsClient, AdsRequest, MAX_ADS, MAX_CONTEXT_KEYS, contract};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteError, RemoteSettings};
use cleave_kernel::testing::{TestDb, TestKeys, TestServer, test_databases};
use cleave_migrations::MigratorTrait;
use sea_orm::ConnectionTrait;

async fn start(db: &TestDb) -> Arc<AdsModule> {
    let conn = db.connect().await;
    cleave_migrations::ads::Migrator::up(&conn, None)
        .await
        .expect("migrate ads");
    AdsModule::start(conn, &AdsConfig::default(), AdsDeps)
        .await
        .expect("start ads")
}

fn remote(server: &TestServer) -> RemoteClient {
    RemoteClient::new("ads", server.base_url.clone(), &RemoteSettings::default()).expect("client")
}

#[tokio::test]
async fn ads_in_process_meets_the_contract() {
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
    CallContext::root().with_principal(keys.principal("ads-test-user", &[role]))
}

#[tokio::test]
async fn ads_over_http_meets_the_contract() {
    for db in test_databases().await {
        let api: Arc<dyn AdsApi> = start(&db).await;
        let keys = TestKeys::new();
        let auth = keys.authenticator();
        let server = TestServer::spawn(move |cfg| {
            cfg.app_data(actix_web::web::Data::from(auth.clone()));
            ads_api::http::configure(cfg, api.clone());
        });
        let client = AdsClient::new(remote(&server));
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

/// The client refuses bad keys before sending them; the server must refuse them too, for
/// callers that are not our client.
#[tokio::test]
async fn the_server_checks_the_query_on_its_own() {
    for db in test_databases().await {
        let api: Arc<dyn AdsApi> = start(&db).await;
        let server = TestServer::spawn(move |cfg| ads_api::http::configure(cfg, api.clone()));
        let remote = remote(&server);
        let ctx = CallContext::root();

        let no_query: Ads = remote
            .get_json(&ctx, "/api/ads/v1/ads")
            .await
            .expect("no query string");
        assert_eq!(
            no_query.ads.len(),
            MAX_ADS,
            "{}: a missing query means no keys",
            db.backend
        );
        let spaced: Ads = remote
            .get_json(&ctx, "/api/ads/v1/ads?context_keys=+Clothing+")
            .await
            .expect("spaced key");
        assert_eq!(
            spaced
                .ads
                .iter()
                .map(|ad| ad.redirect_url.as_str())
                .collect::<Vec<_>>(),
            vec!["/product/66VCHSJNUP"],
            "{}: '+' decodes to a space, which is trimmed",
            db.backend
        );

        let too_many = (0..=MAX_CONTEXT_KEYS)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let cases = [
            (format!("context_keys={too_many}"), "ads.too_many_keys"),
            (
                "context_keys=kitchen,,clothing".to_owned(),
                "ads.invalid_context_key",
            ),
            (
                "context_keys=kitchen,".to_owned(),
                "ads.invalid_context_key",
            ),
            (
                "context_keys=bad%3Ckey".to_owned(),
                "ads.invalid_context_key",
            ),
        ];
        for (query, code) in cases {
            match remote
                .get_json::<Ads>(&ctx, &format!("/api/ads/v1/ads?{query}"))
                .await
            {
                Err(RemoteError::Problem { problem, .. }) => assert_eq!(
                    (problem.status, problem.code.as_str()),
                    (400, code),
                    "{}: {query}",
                    db.backend
                ),
                other => panic!("{}: {query} gave {other:?}", db.backend),
            }
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn start_serves_the_ads_in_the_table_at_that_time() {
    for db in test_databases().await {
        let ctx = CallContext::root();
        let before = start(&db).await;
        let conn = db.connect().await;
        conn.execute_unprepared(
            r#"INSERT INTO ads_ads (id, category, redirect_url, "text") VALUES ('kettle', 'Kettles', '/product/KETTLE0001', 'Kettle for sale. 15% off.')"#,
        )
        .await
        .expect("insert");
        let req = AdsRequest {
            context_keys: vec!["kettles".to_owned()],
        };
        let old = before.get_ads(&ctx, req.clone()).await.expect("before");
        assert_eq!(old.ads.len(), MAX_ADS, "{}: no kettle ad yet", db.backend);
        assert!(
            old.ads
                .iter()
                .all(|ad| ad.redirect_url != "/product/KETTLE0001"),
            "{}: loaded before the insert",
            db.backend
        );

        let after = AdsModule::start(conn, &AdsConfig::default(), AdsDeps)
            .await
            .expect("restart");
        let new = after.get_ads(&ctx, req).await.expect("after");
        assert_eq!(
            new.ads,
            vec![Ad {
                redirect_url: "/product/KETTLE0001".to_owned(),
                text: "Kettle for sale. 15% off.".to_owned(),
            }],
            "{}: a restart reads the table again, categories ignoring case",
            db.backend
        );
    }
}
