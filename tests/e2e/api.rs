//! The four modules' REST APIs in one process, on every test database: what they answer, and
//! that bad input gets a problem+json 4xx, never a 500.

use std::sync::Arc;

use cleave_kernel::testing::test_databases;
use reqwest::Method;

use crate::helpers::{TestApp, call_as, get, script};

#[tokio::test]
async fn one_process_serves_every_module_api() {
    for db in test_databases().await {
        let backend = db.backend;
        let app = TestApp::single(Arc::new(db)).await;
        let base = app.base.to_string();
        let answers = script(&base).await;
        let find = |label: &str| {
            answers
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| panic!("no call {label}"))
        };

        let list = find("GET /api/catalog/v1/products");
        assert_eq!(list.status, 200, "{backend}");
        assert!(
            list.body["products"]
                .as_array()
                .is_some_and(|p| p.len() >= 9),
            "{backend}"
        );
        let sunglasses = find("GET /api/catalog/v1/products/OLJCESPC7Z");
        assert_eq!(sunglasses.body["price_usd"]["units"], 19, "{backend}");
        let kitchen = find("GET /api/catalog/v1/products?q=glass");
        let ids: Vec<&str> = kitchen.body["products"]
            .as_array()
            .expect("products")
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        assert!(
            ids.contains(&"9SIQT8TOJO"),
            "{backend}: 'glass' finds the bamboo glass jar"
        );
        find("GET /api/catalog/v1/products/NOSUCHTHING")
            .assert_problem(404, "catalog.product_not_found");
        find("GET /api/catalog/v1/products/bad%20id")
            .assert_problem(400, "catalog.invalid_product_id");

        let eur = find("POST /api/currency/v1/convert");
        assert_eq!(eur.status, 200, "{backend}: {eur:?}");
        // 109.99 USD / 1.1305 = 97.29323308... EUR
        assert_eq!(
            (eur.body["units"].as_i64(), eur.body["nanos"].as_i64()),
            (Some(97), Some(293_233_083))
        );

        let cart = answers
            .iter()
            .filter(|(l, _)| l == "GET /api/cart/v1/carts/{user}")
            .map(|(_, a)| a.body["items"].as_array().map_or(0, Vec::len))
            .collect::<Vec<_>>();
        assert_eq!(cart, vec![0, 2, 0], "{backend}: empty, two lines, emptied");

        let recs = find(
            "GET /api/recommendation/v1/recommendations?user_id=shopper&product_ids=OLJCESPC7Z,66VCHSJNUP",
        );
        let recs = recs.body["product_ids"].as_array().expect("ids").clone();
        assert_eq!(recs.len(), 5, "{backend}");
        assert!(
            !recs.iter().any(|r| r == "OLJCESPC7Z" || r == "66VCHSJNUP"),
            "{backend}"
        );

        let ready = get(&base, "/health/ready").await;
        assert_eq!(ready.status, 200, "{backend}");
        assert_eq!(ready.body["checks"]["database"], "ok", "{backend}");
        assert_eq!(get(&base, "/health/live").await.status, 200);
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_input_gets_problem_json_4xx_never_500() {
    for db in test_databases().await {
        bad_input_on(db).await;
    }
}

async fn bad_input_on(db: cleave_kernel::testing::TestDb) {
    let backend = db.backend;
    let app = TestApp::single(Arc::new(db)).await;
    let base = app.base.to_string();
    let (user, guest_token) = crate::helpers::guest(&base).await;
    let token = Some(guest_token.as_str());
    let items = &format!("/api/cart/v1/carts/{user}/items");

    let cases: Vec<(Method, String, Option<String>, u16, &str)> = vec![
        (
            Method::GET,
            "/api/catalog/v1/products/UNKNOWN42".into(),
            None,
            404,
            "catalog.product_not_found",
        ),
        (
            Method::GET,
            "/api/catalog/v1/products/%3Cscript%3E".into(),
            None,
            400,
            "catalog.invalid_product_id",
        ),
        (
            Method::GET,
            format!("/api/catalog/v1/products?q={}", "a".repeat(201)),
            None,
            400,
            "catalog.invalid_query",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id":"OLJCESPC7Z","quantity":0}"#.into()),
            400,
            "cart.invalid_quantity",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id":"OLJCESPC7Z","quantity":-3}"#.into()),
            400,
            "cart.invalid_quantity",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id":"OLJCESPC7Z","quantity":1001}"#.into()),
            400,
            "cart.invalid_quantity",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id":"OLJCESPC7Z","quantity":99999999999999999999}"#.into()),
            400,
            "cleave.invalid_json",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id": "OLJC"#.into()),
            400,
            "cleave.invalid_json",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"product_id":"has space","quantity":1}"#.into()),
            400,
            "cleave.invalid_json",
        ),
        (
            Method::POST,
            items.into(),
            Some(r#"{"quantity":1}"#.into()),
            400,
            "cleave.invalid_json",
        ),
        (
            Method::POST,
            items.into(),
            Some("[]".into()),
            400,
            "cleave.invalid_json",
        ),
        (
            Method::GET,
            "/api/cart/v1/carts/bad%2Fuser".into(),
            None,
            400,
            "cart.invalid_user_id",
        ),
        (
            Method::POST,
            "/api/currency/v1/convert".into(),
            Some(r#"{"from":{"currency_code":"USD","units":1,"nanos":0},"to_code":"ZZZ"}"#.into()),
            400,
            "currency.unsupported_currency",
        ),
        (
            Method::POST,
            "/api/currency/v1/convert".into(),
            Some(r#"{"from":{"currency_code":"QQQ","units":1,"nanos":0},"to_code":"EUR"}"#.into()),
            400,
            "currency.unsupported_currency",
        ),
        (
            Method::POST,
            "/api/currency/v1/convert".into(),
            Some(r#"{"from":{"currency_code":"USD","units":1,"nanos":-5},"to_code":"EUR"}"#.into()),
            400,
            "currency.invalid_money",
        ),
        (
            Method::GET,
            "/api/recommendation/v1/recommendations".into(),
            None,
            400,
            "cleave.invalid_query",
        ),
        (
            Method::GET,
            "/api/recommendation/v1/recommendations?user_id=u&product_ids=a,,b%20c".into(),
            None,
            400,
            "recommendation.invalid_product_id",
        ),
        (
            Method::GET,
            "/api/nowhere".into(),
            None,
            404,
            "cleave.route_not_found",
        ),
        (
            Method::GET,
            "/api/catalog/v1/nope".into(),
            None,
            404,
            "cleave.route_not_found",
        ),
        (
            Method::PUT,
            "/api/catalog/v1/products".into(),
            None,
            405,
            "cleave.method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let answer = call_as(&base, method.clone(), &path, body.as_deref(), token).await;
        assert!(
            answer.status.as_u16() < 500,
            "[{backend}] {method} {path} gave {answer:?}"
        );
        answer.assert_problem(status, code);
    }
    // A 405 names the methods the route takes, on API routes and on the shop's pages.
    for (method, path, allow) in [
        ("PUT", "/api/catalog/v1/products", "GET"),
        ("PUT", "/cart", "GET, POST"),
        ("DELETE", "/", "GET"),
    ] {
        let answer = crate::helpers::raw(&app.base, method, path, None).await;
        assert_eq!(answer.status, 405, "{method} {path}: {answer:?}");
        let mut got: Vec<&str> = answer
            .header("allow")
            .unwrap_or_default()
            .split(", ")
            .collect();
        got.sort_unstable();
        let mut want: Vec<&str> = allow.split(", ").collect();
        want.sort_unstable();
        assert_eq!(got, want, "Allow of {method} {path}");
    }

    // Oversized body: refused before it is read, nothing stored.
    let huge = format!(
        r#"{{"product_id":"OLJCESPC7Z","quantity":1,"pad":"{}"}}"#,
        "x".repeat(100_000)
    );
    call_as(&base, Method::POST, items, Some(&huge), token)
        .await
        .assert_problem(413, "cleave.payload_too_large");
    // Wrong media type.
    let res = crate::helpers::client()
        .post(format!("{base}{}", items.trim_start_matches('/')))
        .header("content-type", "text/plain")
        .bearer_auth(&guest_token)
        .body(r#"{"product_id":"OLJCESPC7Z","quantity":1}"#)
        .send()
        .await
        .expect("send");
    crate::helpers::read(res)
        .await
        .assert_problem(415, "cleave.unsupported_media_type");
    // Nothing of the refused requests reached the cart.
    let cart = call_as(
        &base,
        Method::GET,
        &format!("/api/cart/v1/carts/{user}"),
        None,
        token,
    )
    .await;
    assert_eq!(
        cart.body["items"],
        serde_json::json!([]),
        "refused requests changed nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_and_generated() {
    let app = TestApp::single(Arc::new(test_databases().await.remove(0))).await;
    let res = crate::helpers::client()
        .get(app.url("/api/catalog/v1/products/NOPE"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["request_id"], "trace-me-123");
    let res = crate::helpers::client()
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("send");
    assert!(
        !res.headers()["x-request-id"].is_empty(),
        "a request without an id gets one"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_callers_spent_deadline_is_answered_504_without_doing_the_work() {
    let app = TestApp::single(Arc::new(test_databases().await.remove(0))).await;
    let (user, token) = crate::helpers::guest(app.base.as_ref()).await;
    let add = |deadline: &'static str| {
        crate::helpers::client()
            .post(app.url(&format!("/api/cart/v1/carts/{user}/items")))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("x-cleave-deadline-ms", deadline)
            .body(r#"{"product_id":"OLJCESPC7Z","quantity":1}"#)
            .send()
    };
    let spent = crate::helpers::read(add("0").await.expect("send")).await;
    spent.assert_problem(504, "cleave.timeout");
    let base = app.base.to_string();
    assert_eq!(
        crate::helpers::cart_items(&base, &user, &token).await,
        serde_json::json!([]),
        "nothing was added"
    );
    // A budget that suffices: the same request is served.
    let served = crate::helpers::read(add("5000").await.expect("send")).await;
    assert!(served.status.is_success(), "{served:?}");
    app.stop().await;
}
