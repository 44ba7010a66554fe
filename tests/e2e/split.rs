//! The central promise: moving any module into another process changes no answer; and when
//! that process dies, calls that need it fail fast with 503 while the rest keeps working.

use std::sync::Arc;

use cleave_kernel::testing::{TestDb, test_databases};
use serde_json::{Value, json};

use crate::helpers::{TestApp, get, script};
use crate::process::Cleave;

const MODULES: [&str; 4] = ["catalog", "currency", "cart", "recommendation"];

/// Every module but `moved`.
fn others(moved: &str) -> Vec<&'static str> {
    MODULES.iter().copied().filter(|m| *m != moved).collect()
}

#[tokio::test]
async fn moving_any_one_module_to_another_process_changes_no_answer() {
    for db in test_databases().await {
        let backend = db.backend;
        let single = TestApp::single(Arc::new(db)).await;
        let expected = script(single.base.as_str()).await;
        single.stop().await;
        for moved in MODULES {
            let (away_db, main_db) = fresh_pair(backend).await;
            // Identity in a process of its own: both others verify tokens with its keys.
            let identity = TestApp::start(
                Some(Arc::new(fresh_db(backend).await)),
                &[("server.modules", json!(["identity"]))],
            )
            .await;
            let identity_url = json!(identity.base.as_str());
            // recommendation requires the catalog: its process reaches one over HTTP.
            let provider = if moved == "recommendation" {
                let (provider_db, _) = fresh_pair(backend).await;
                Some(
                    TestApp::start(
                        Some(provider_db),
                        &[
                            ("server.modules", json!(["catalog"])),
                            ("modules.identity.url", identity_url.clone()),
                        ],
                    )
                    .await,
                )
            } else {
                None
            };
            let mut away_keys = vec![
                ("server.modules".to_owned(), json!([moved])),
                ("modules.identity.url".to_owned(), identity_url.clone()),
            ];
            if let Some(p) = &provider {
                away_keys.push(("modules.catalog.url".to_owned(), json!(p.base.as_str())));
            }
            let away_keys: Vec<(&str, Value)> = away_keys
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let away = TestApp::start(Some(away_db), &away_keys).await;
            let url_key = format!("modules.{moved}.url");
            let main = TestApp::start(
                Some(main_db),
                &[
                    ("server.modules", json!(others(moved))),
                    (url_key.as_str(), json!(away.base.as_str())),
                    ("modules.identity.url", identity_url.clone()),
                ],
            )
            .await;
            let got = script(main.base.as_str()).await;
            assert_eq!(got.len(), expected.len());
            for ((label, want), (_, have)) in expected.iter().zip(&got) {
                assert_eq!(have, want, "[{backend}] {moved} moved out: {label}");
            }
            main.stop().await;
            away.stop().await;
            if let Some(p) = provider {
                p.stop().await;
            }
            identity.stop().await;
        }
    }
}

/// Two fresh databases on `backend`.
async fn fresh_pair(backend: &str) -> (Arc<TestDb>, Arc<TestDb>) {
    (
        Arc::new(fresh_db(backend).await),
        Arc::new(fresh_db(backend).await),
    )
}

async fn fresh_db(backend: &str) -> TestDb {
    match backend {
        "postgres" => {
            let url = std::env::var(cleave_kernel::testing::TEST_DATABASE_URL_ENV).expect("url");
            TestDb::postgres(&url).await
        }
        _ => TestDb::sqlite(),
    }
}

#[tokio::test]
async fn two_os_processes_answer_like_one_and_fail_fast_when_one_dies() {
    for db in test_databases().await {
        let backend = db.backend;
        let single = TestApp::single(Arc::new(db)).await;
        let expected = script(single.base.as_str()).await;
        single.stop().await;

        let (catalog_db, main_db) = fresh_pair(backend).await;
        let identity_db = fresh_db(backend).await;
        let identity = Cleave::serve(
            &["--modules", "identity"],
            &[("CLEAVE_DATABASE__URL", identity_db.url.clone())],
        );
        let mut catalog = Cleave::serve(
            &["--modules", "catalog"],
            &[
                ("CLEAVE_DATABASE__URL", catalog_db.url.clone()),
                ("CLEAVE_MODULES__IDENTITY__URL", identity.base()),
            ],
        );
        let mut main = Cleave::serve(
            &["--modules", "currency,cart,recommendation"],
            &[
                ("CLEAVE_DATABASE__URL", main_db.url.clone()),
                ("CLEAVE_MODULES__CATALOG__URL", catalog.base()),
                ("CLEAVE_MODULES__IDENTITY__URL", identity.base()),
                // Every read reaches the catalog, none answered from kept answers: the
                // catalog's death must show at once (events.rs shows kept answers).
                ("CLEAVE_REMOTE__CACHE_TTL_MS", "0".into()),
            ],
        );
        let base = main.base();
        let got = script(&base).await;
        for ((label, want), (_, have)) in expected.iter().zip(&got) {
            assert_eq!(
                have, want,
                "[{backend}] catalog in its own OS process: {label}"
            );
        }
        assert_eq!(
            get(&base, "/health/ready").await.status,
            200,
            "[{backend}] ready while catalog runs"
        );

        catalog.kill();
        // Calls that need the catalog: 503 problem+json (connection refused: no waiting).
        let res = crate::helpers::client()
            .get(format!("{base}/api/catalog/v1/products/OLJCESPC7Z"))
            .header("x-request-id", "dead-catalog-1")
            .send()
            .await
            .expect("send");
        crate::helpers::read(res)
            .await
            .assert_problem(503, "catalog.unavailable");
        // The handler's own log line (not just the access line) carries the request id.
        let line = main.wait_for_log(|v| {
            v["message"] == "forwarded request failed" && v["request_id"] == "dead-catalog-1"
        });
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["module"], "catalog");
        get(
            &base,
            "/api/recommendation/v1/recommendations?user_id=u&product_ids=",
        )
        .await
        .assert_problem(503, "recommendation.unavailable");
        get(&base, "/health/ready")
            .await
            .assert_problem(503, "cleave.not_ready");
        // Unrelated routes keep working.
        let (user, token) = crate::helpers::guest(&base).await;
        let cart = crate::helpers::call_as(
            &base,
            reqwest::Method::GET,
            &format!("/api/cart/v1/carts/{user}"),
            None,
            Some(&token),
        )
        .await;
        assert_eq!(cart.status, 200, "[{backend}] {cart:?}");
        let currencies = get(&base, "/api/currency/v1/currencies").await;
        assert_eq!(currencies.status, 200);
        assert!(
            currencies.body["currency_codes"]
                .as_array()
                .is_some_and(|c| c.len() >= 30)
        );
        assert_eq!(get(&base, "/health/live").await.status, 200);
    }
}
