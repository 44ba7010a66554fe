//! Version skew during a rolling deploy: within `v1` a contract changes only by addition
//! (README, "Version skew"). A newer client's added field reaches an older server, which
//! ignores it; an older client's request reaches a newer server that reads the added field as
//! optional, and the newer server's added answer field reaches the older client, which
//! ignores it. The older side is today's code each time; the newer side adds one field.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_domain::Money;
use cleave_kernel::CallContext;
use cleave_kernel::testing::{TestDb, TestServer};
use currency_api::CurrencyContract;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::helpers::{TestApp, call_as, guest};

#[tokio::test]
async fn a_newer_clients_added_field_is_ignored_by_an_older_server() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let base = app.base.to_string();
    let (user, token) = guest(&base).await;

    // A newer client sends `gift_wrap` with the item; today's cart ignores it.
    let added = call_as(
        &base,
        Method::POST,
        &format!("/api/cart/v1/carts/{user}/items"),
        Some(&json!({"product_id": "OLJCESPC7Z", "quantity": 2, "gift_wrap": true}).to_string()),
        Some(&token),
    )
    .await;
    assert!(added.status.is_success(), "{added:?}");
    let cart = call_as(
        &base,
        Method::GET,
        &format!("/api/cart/v1/carts/{user}"),
        None,
        Some(&token),
    )
    .await;
    assert_eq!(
        cart.body["items"][0]["product_id"], "OLJCESPC7Z",
        "{cart:?}"
    );
    assert_eq!(cart.body["items"][0]["quantity"], 2, "{cart:?}");
    assert!(cart.body["items"][0].get("gift_wrap").is_none(), "{cart:?}");

    // And a conversion asked with an added `rounding` field answers as without it.
    let convert = |body: serde_json::Value| {
        let base = base.clone();
        async move {
            call_as(
                &base,
                Method::POST,
                "/api/currency/v1/convert",
                Some(&body.to_string()),
                None,
            )
            .await
        }
    };
    let from = json!({"currency_code": "USD", "units": 109, "nanos": 990_000_000});
    let plain = convert(json!({"from": from, "to_code": "EUR"})).await;
    let newer = convert(json!({"from": from, "to_code": "EUR", "rounding": "cents"})).await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(newer.status, plain.status);
    assert_eq!(newer.body, plain.body);
    app.stop().await;
}

/// The convert request of a newer currency module: today's fields and one more, optional.
#[derive(Debug, Deserialize)]
struct NewerConvertRequest {
    from: Money,
    to_code: String,
    #[serde(default)]
    rounding: Option<String>,
}

#[tokio::test]
async fn an_older_client_talks_to_a_newer_server_that_added_a_field() {
    // A newer currency module: reads the added request field as optional, and answers with
    // an added field of its own.
    let newer = TestServer::spawn(|cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/api/currency/v1/convert",
            web::post().to(|body: web::Json<NewerConvertRequest>| async move {
                let body = body.into_inner();
                HttpResponse::Ok().json(json!({
                    "currency_code": body.to_code,
                    "units": body.from.units * 2,
                    "nanos": 0,
                    "rounding": body.rounding.unwrap_or_else(|| "nanos".into()),
                }))
            }),
        );
    });
    // Today's client, which knows neither field.
    let client = newer.client::<CurrencyContract>();
    let from = Money::new("USD", 21, 0).expect("money");
    let converted = client
        .convert(&CallContext::root(), from, "EUR".into())
        .await
        .expect("the newer server's answer decodes");
    assert_eq!(converted, Money::new("EUR", 42, 0).expect("money"));
    newer.stop().await;
}
