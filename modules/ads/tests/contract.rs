//! The ads contract suite against the module in process and over HTTP, plus what the server
//! checks on its own and what a restart picks up.

use ads::{AdsConfig, AdsDeps, AdsModule};
use ads_api::{Ad, AdsApi, AdsContract, AdsRequest, MAX_ADS, MAX_CONTEXT_KEYS, contract};
use cleave_kernel::CallContext;
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, TestKeys, TestServer, test_databases};
use cleave_migrations::ads::Migrator;
use sea_orm::ConnectionTrait;
use serde_json::Value;

fn harness() -> ContractHarness<AdsModule> {
    ContractHarness::new::<Migrations<Migrator>>()
        .with_migrations::<Migrations<cleave_migrations::events::Migrator>>()
}

async fn start(db: &TestDb) -> std::sync::Arc<dyn AdsApi> {
    harness().start(db, &TestKeys::new()).await
}

#[tokio::test]
async fn ads_meet_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move {
            contract::run(&p.label, p.api.as_ref()).await;
            let (admin, shopper) = (
                p.as_user("ads-test-user", &["admin"]),
                p.as_user("ads-test-user", &["shopper"]),
            );
            contract::run_admin(&p.label, p.api.as_ref(), &admin, &shopper).await;
        })
        .await;
}

/// `GET` of `path` on `server`: the status and the JSON body.
async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let res = reqwest::get(server.base_url.join(path).expect("url"))
        .await
        .expect("send");
    (res.status().as_u16(), res.json().await.expect("json"))
}

/// The client refuses bad keys before sending them; the server must refuse them too, for
/// callers that are not our client.
#[tokio::test]
async fn the_server_checks_the_query_on_its_own() {
    for db in test_databases().await {
        let server = TestServer::serve::<AdsContract>(start(&db).await, &TestKeys::new());
        let (status, no_query) = get(&server, "/api/ads/v1/ads").await;
        assert_eq!(status, 200, "{}: no query string", db.backend);
        assert_eq!(
            no_query["ads"].as_array().map_or(0, Vec::len),
            MAX_ADS,
            "{}: a missing query means no keys",
            db.backend
        );
        let (status, spaced) = get(&server, "/api/ads/v1/ads?context_keys=+Clothing+").await;
        assert_eq!(status, 200, "{}: spaced key", db.backend);
        assert_eq!(
            spaced["ads"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|ad| ad["redirect_url"].as_str().unwrap_or_default())
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
            let (status, problem) = get(&server, &format!("/api/ads/v1/ads?{query}")).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (400, Some(code)),
                "{}: {query}",
                db.backend
            );
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

        let after = AdsModule::start(
            conn,
            &AdsConfig::default(),
            AdsDeps,
            cleave_kernel::events::Relay::disabled(),
        )
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
