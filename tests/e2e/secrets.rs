//! No secret in any log line at any level: a full run (registration, login, refresh, bearer
//! calls, a forged token, checkout with a card, an admin token) through a real process logging
//! at `trace`, then every line is searched for the passwords, tokens and card numbers used.

use reqwest::Method;
use serde_json::{Value, json};

use crate::process::Cleave;

async fn send(
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Value {
    crate::helpers::call_json(base, method, path, body, token)
        .await
        .body
}

#[tokio::test]
async fn no_log_line_at_any_level_shows_a_password_token_or_card_number() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let admin_token = crate::identity::admin(
        &[
            "token", "issue", "--sub", "ops", "--role", "admin", "--ttl", "120",
        ],
        &db,
        "",
    );
    let admin_token = admin_token.trim().to_owned();
    let mut app = Cleave::serve(
        &[],
        &[
            ("CLEAVE_DATABASE__URL", db),
            ("CLEAVE_LOG__LEVEL", "trace".into()),
            ("CLEAVE_LOG__ACCESS", "true".into()),
        ],
    );
    let base = app.base();
    let password = "Sup3r-Secret-Passphrase";
    let creds = json!({"email": "secret@example.com", "password": password});
    send(
        &base,
        Method::POST,
        "/api/identity/v1/users",
        Some(creds.clone()),
        None,
    )
    .await;
    let pair = send(
        &base,
        Method::POST,
        "/api/identity/v1/tokens",
        Some(creds.clone()),
        None,
    )
    .await;
    let wrong = json!({"email": "secret@example.com", "password": "Wr0ng-Passphrase-Guess"});
    send(
        &base,
        Method::POST,
        "/api/identity/v1/tokens",
        Some(wrong),
        None,
    )
    .await;
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();
    let me = send(
        &base,
        Method::GET,
        "/api/identity/v1/me",
        None,
        Some(&access),
    )
    .await;
    let next = crate::helpers::refresh(&base, &refresh).await.body;
    let next_refresh = next["refresh_token"].as_str().expect("refresh").to_owned();
    send(
        &base,
        Method::GET,
        "/api/catalog/v1/products",
        None,
        Some("forged.token.value"),
    )
    .await;
    send(
        &base,
        Method::GET,
        "/api/checkout/v1/orders?limit=5",
        None,
        Some(&admin_token),
    )
    .await;
    let user_id = me["user_id"].as_str().expect("user id").to_owned();
    send(
        &base,
        Method::POST,
        &format!("/api/cart/v1/carts/{user_id}/items"),
        Some(json!({"product_id": "OLJCESPC7Z", "quantity": 1})),
        Some(&access),
    )
    .await;
    let card = "4111-1111-1111-1111";
    let order = send(
        &base,
        Method::POST,
        "/api/checkout/v1/orders",
        Some(json!({
            "user_id": user_id, "user_currency": "USD", "email": "secret@example.com",
            "address": {"street_address": "1 Main St", "city": "Springfield", "state": "",
                        "country": "US", "zip_code": "12345"},
            "credit_card": {"number": card, "cvv": "918", "expiration_year": 2039, "expiration_month": 5}
        })),
        Some(&access),
    )
    .await;
    assert_eq!(order["status"], "placed", "{order}");
    // Everything above has been logged once the order's confirmation is.
    let order_id = order["order_id"].as_str().expect("id").to_owned();
    app.find_log(|v| {
        v["message"] == "order confirmation sent" && v["order_id"] == order_id.as_str()
    });

    let lines = app.logged();
    assert!(
        lines.len() > 50,
        "a trace-level run logs plenty: {}",
        lines.len()
    );
    let secrets = [
        password,
        "Wr0ng-Passphrase-Guess",
        access.as_str(),
        refresh.as_str(),
        next_refresh.as_str(),
        admin_token.as_str(),
        "forged.token.value",
        card,
        "4111111111111111",
    ];
    for line in &lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a log line shows a secret: {line}");
        }
        // Parts of a token would be as bad: its signature is the last segment.
        for token in [&access, &admin_token] {
            let signature = token.rsplit('.').next().unwrap_or_default();
            assert!(
                !line.contains(signature),
                "a log line shows a token signature: {line}"
            );
        }
    }
}
