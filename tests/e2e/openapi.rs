//! The OpenAPI document against the server: every operation it describes is called, every
//! answer's status must be documented for that operation, and every JSON body must validate
//! against the documented schema. A route the server has but the document lacks, a status it
//! does not list, or a body of another shape fails here.

use std::collections::BTreeSet;
use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// One answer as the document sees it.
struct Seen {
    method: Method,
    path: String,
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Seen {
    let mut req = reqwest::Client::new().request(method.clone(), format!("{base}{path}"));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let answer = crate::helpers::read(req.send().await.expect("send")).await;
    Seen {
        method,
        path: path.split('?').next().unwrap_or_default().to_owned(),
        status: answer.status.as_u16(),
        content_type: answer.content_type,
        body: answer.body,
    }
}

fn address() -> Value {
    json!({"street_address": "1600 Amphitheatre Parkway", "city": "Mountain View",
           "state": "CA", "country": "United States", "zip_code": "94043"})
}

fn card(number: &str) -> Value {
    json!({"number": number, "cvv": "672", "expiration_year": 2039, "expiration_month": 1})
}

/// Calls every route, with good and bad input; `admin` is an admin's bearer token.
async fn exercise(base: &str, admin: &str) -> Vec<Seen> {
    let admin = format!("Bearer {admin}");
    let as_admin = [("authorization", admin.as_str())];
    let mut seen = Vec::new();
    // As an admin (admitted nearly everywhere), so that success answers are checked too;
    // who else may call what is the authorization test's business.
    let get = |p: String| async move { send(base, Method::GET, &p, None, &as_admin).await };
    macro_rules! call {
        // `call!(POST path, body)` as an admin; `call!(POST path, body, headers)` as `headers` say.
        ($method:ident $path:expr, $body:expr) => {
            call!(send(base, Method::$method, $path, $body, &as_admin))
        };
        ($method:ident $path:expr, $body:expr, $headers:expr) => {
            call!(send(base, Method::$method, $path, $body, $headers))
        };
        ($e:expr) => {{
            let s = $e.await;
            let body = s.body.clone();
            seen.push(s);
            body
        }};
    }
    // catalog
    call!(get("/api/catalog/v1/products".into()));
    call!(get("/api/catalog/v1/products?q=mug".into()));
    call!(get("/api/catalog/v1/products/OLJCESPC7Z".into()));
    call!(get("/api/catalog/v1/products/NOSUCHTHING".into()));
    // catalog management (admin)
    let teapot = json!({"id": "DOCTEAPOT", "name": "Teapot", "description": "Short and stout.",
        "picture": "/static/img/products/teapot.svg",
        "price_usd": {"currency_code": "USD", "units": 20, "nanos": 0}, "categories": ["kitchen"]});
    call!(PUT "/api/catalog/v1/products/DOCTEAPOT", Some(teapot.clone()));
    call!(PUT "/api/catalog/v1/products/DOCTEAPOT", Some(teapot));
    call!(DELETE "/api/catalog/v1/products/DOCTEAPOT", None);
    call!(DELETE "/api/catalog/v1/products/DOCTEAPOT", None);
    // ads management (admin)
    let ad =
        json!({"category": "teapots", "redirect_url": "/product/6E92ZMYYFZ", "text": "Tea time."});
    call!(PUT "/api/ads/v1/ads/doc-ad", Some(ad.clone()));
    call!(PUT "/api/ads/v1/ads/doc-ad", Some(ad));
    call!(DELETE "/api/ads/v1/ads/doc-ad", None);
    call!(DELETE "/api/ads/v1/ads/doc-ad", None);
    // currency
    call!(get("/api/currency/v1/currencies".into()));
    call!(
        POST "/api/currency/v1/convert",
        Some(json!({"from": {"currency_code": "USD", "units": 3, "nanos": 0}, "to_code": "EUR"}))
    );
    call!(
        POST "/api/currency/v1/convert",
        Some(json!({"from": {"currency_code": "USD", "units": 3, "nanos": 0}, "to_code": "XXX"}))
    );
    // cart
    call!(get("/api/cart/v1/carts/doc-user".into()));
    call!(
        POST "/api/cart/v1/carts/doc-user/items",
        Some(json!({"product_id": "OLJCESPC7Z", "quantity": 2}))
    );
    call!(
        POST "/api/cart/v1/carts/doc-user/items",
        Some(json!({"product_id": "OLJCESPC7Z", "quantity": 0}))
    );
    call!(POST "/api/cart/v1/carts/doc-user/items", Some(json!("not an object")));
    call!(DELETE "/api/cart/v1/carts/doc-user", None);
    // recommendation
    call!(get(
        "/api/recommendation/v1/recommendations?user_id=doc-user&product_ids=OLJCESPC7Z".into()
    ));
    // shipping
    let items = json!([{"product_id": "OLJCESPC7Z", "quantity": 2}]);
    call!(POST "/api/shipping/v1/quotes", Some(json!({"address": address(), "items": items})));
    let shipment = call!(
        POST "/api/shipping/v1/shipments",
        Some(json!({"address": address(), "items": items}))
    );
    let tracking = shipment["tracking_id"].as_str().unwrap_or("XX").to_owned();
    call!(get(format!("/api/shipping/v1/shipments/{tracking}")));
    call!(get("/api/shipping/v1/shipments/AB-00000-0000000".into()));
    call!(POST "/api/shipping/v1/shipments", Some(json!({"address": address(), "items": []})));
    // payment
    let usd10 = json!({"currency_code": "USD", "units": 10, "nanos": 0});
    let charge_req = json!({"amount": usd10, "card": card("4111111111111111"),
        "reference": "doc-ref-1"});
    let charge = call!(POST "/api/payment/v1/charges", Some(charge_req));
    let txn = charge["transaction_id"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    let declined_req = json!({"amount": usd10, "card": card("378282246310005")});
    call!(POST "/api/payment/v1/charges", Some(declined_req));
    call!(get(format!("/api/payment/v1/charges/{txn}")));
    call!(get("/api/payment/v1/charges?reference=doc-ref-1".into()));
    call!(get("/api/payment/v1/charges?reference=doc-ref-none".into()));
    call!(POST & format!("/api/payment/v1/charges/{txn}/refund"), None);
    call!(POST & format!("/api/payment/v1/charges/{txn}/refund"), None);
    call!(POST "/api/payment/v1/charges/nope/refund", None);
    // ads
    call!(get("/api/ads/v1/ads?context_keys=kitchen".into()));
    call!(get("/api/ads/v1/ads".into()));
    call!(get("/api/ads/v1/ads?context_keys=bad%3Ckey".into()));
    // checkout
    call!(
        POST "/api/cart/v1/carts/doc-user/items",
        Some(json!({"product_id": "6E92ZMYYFZ", "quantity": 1}))
    );
    let order_req = json!({"user_id": "doc-user", "user_currency": "EUR", "address": address(),
        "email": "someone@example.com", "credit_card": card("4432-8015-6152-0454")});
    let order = call!(
        POST "/api/checkout/v1/orders",
        Some(order_req.clone()),
        &[("idempotency-key", "doc-1")]
    );
    let order_id = order["order_id"].as_str().unwrap_or("none").to_owned();
    let mut other = order_req.clone();
    other["user_currency"] = json!("USD");
    call!(POST "/api/checkout/v1/orders", Some(other), &[("idempotency-key", "doc-1")]);
    call!(POST "/api/checkout/v1/orders", Some(order_req.clone()));
    let mut declined = order_req.clone();
    declined["credit_card"] = card("378282246310005");
    call!(
        POST "/api/cart/v1/carts/doc-user/items",
        Some(json!({"product_id": "6E92ZMYYFZ", "quantity": 1}))
    );
    call!(POST "/api/checkout/v1/orders", Some(declined));
    call!(get(format!("/api/checkout/v1/orders/{order_id}")));
    call!(GET & format!("/api/checkout/v1/orders/{order_id}"), None);
    call!(GET "/api/checkout/v1/orders?user_id=doc-user", None);
    call!(GET "/api/checkout/v1/orders?limit=5", None);
    call!(get(
        "/api/checkout/v1/orders/0190f5a0-0000-7000-8000-000000000000".into()
    ));
    call!(get("/api/checkout/v1/orders?user_id=doc-user".into()));
    // email
    call!(get(format!(
        "/api/email/v1/confirmations?order_id={order_id}"
    )));
    let mug = json!({"currency_code": "USD", "units": 8, "nanos": 990000000});
    let total = json!({"currency_code": "USD", "units": 18, "nanos": 980000000});
    let confirmation = json!({"message_id": "doc-message-1", "email": "someone@example.com",
        "order": {"order_id": "doc-order", "tracking_id": "AB-12345-1234567",
            "shipping_cost": mug, "total": total,
            "lines": [{"name": "Mug", "quantity": 1, "cost": mug}], "address": address()}});
    call!(POST "/api/email/v1/confirmations", Some(confirmation));
    call!(POST "/api/email/v1/confirmations", Some(json!({"message_id": "x"})));
    // identity
    let creds = json!({"email": "doc@example.com", "password": "correct horse"});
    call!(POST "/api/identity/v1/users", Some(creds.clone()), &[]);
    call!(POST "/api/identity/v1/users", Some(creds.clone()), &[]);
    call!(
        POST "/api/identity/v1/users",
        Some(json!({"email": "x", "password": "correct horse"})),
        &[]
    );
    let pair = call!(POST "/api/identity/v1/tokens", Some(creds.clone()), &[]);
    call!(
        POST "/api/identity/v1/tokens",
        Some(json!({"email": "doc@example.com", "password": "wrong password"})),
        &[]
    );
    let token = pair["access_token"].as_str().unwrap_or("none").to_owned();
    let bearer = format!("Bearer {token}");
    let me = call!(GET "/api/identity/v1/me", None, &[("authorization", bearer.as_str())]);
    call!(GET "/api/identity/v1/me", None, &[]);
    let user_id = me["user_id"].as_str().unwrap_or("none").to_owned();
    call!(get(format!("/api/identity/v1/users/{user_id}/active")));
    call!(get("/api/identity/v1/jwks".into()));
    call!(POST "/api/identity/v1/guests", None, &[]);
    let refreshed = call!(
        POST "/api/identity/v1/tokens/refresh",
        Some(json!({"refresh_token": pair["refresh_token"]})),
        &[]
    );
    call!(
        POST "/api/identity/v1/tokens/refresh",
        Some(json!({"refresh_token": pair["refresh_token"]})),
        &[]
    );
    call!(
        POST "/api/identity/v1/tokens/revoke",
        Some(json!({"refresh_token": refreshed["refresh_token"]})),
        &[]
    );
    call!(
        DELETE & format!("/api/identity/v1/users/{user_id}"),
        None,
        &[("authorization", bearer.as_str())]
    );
    call!(
        DELETE & format!("/api/identity/v1/users/{user_id}"),
        None,
        &[]
    );
    seen
}

/// Whether a path template (`/a/{id}/b`) matches a concrete path.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

#[tokio::test]
async fn every_answer_matches_the_openapi_document_and_every_operation_is_exercised() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let base = app.url("");
    let doc = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .expect("get spec")
        .json::<Value>()
        .await
        .expect("spec is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let components = doc["components"].clone();
    let paths = doc["paths"].as_object().expect("paths").clone();

    let mut documented = BTreeSet::new();
    for (template, item) in &paths {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_uppercase(), template.clone()));
        }
    }
    let mut exercised = BTreeSet::new();
    let mut failures = Vec::new();
    let admin = app.token("openapi-admin", &["admin"]).await;
    for seen in exercise(&base, &admin).await {
        let method = seen.method.as_str().to_lowercase();
        // A concrete path matches its template; prefer templates with fewer parameters
        // (`/charges` before `/charges/{id}`).
        let mut candidates: Vec<&String> = paths
            .iter()
            .filter(|(t, item)| matches(t, &seen.path) && item.get(&method).is_some())
            .map(|(t, _)| t)
            .collect();
        candidates.sort_by_key(|t| t.matches('{').count());
        let Some(template) = candidates.first() else {
            failures.push(format!(
                "{} {} is not in the document",
                seen.method, seen.path
            ));
            continue;
        };
        exercised.insert((seen.method.as_str().to_owned(), (*template).clone()));
        let op = &paths[*template][&method];
        let Some(response) = op["responses"].get(seen.status.to_string()) else {
            failures.push(format!(
                "{} {template} answered {} (not documented): {}",
                seen.method, seen.status, seen.body
            ));
            continue;
        };
        let media = seen
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if seen.body.is_null() {
            continue;
        }
        let Some(schema) = response["content"].get(media).map(|c| c["schema"].clone()) else {
            failures.push(format!(
                "{} {template} {}: content type {media} not documented",
                seen.method, seen.status
            ));
            continue;
        };
        let mut root = schema;
        if let Some(obj) = root.as_object_mut() {
            obj.insert("components".into(), components.clone());
        }
        let validator = jsonschema::validator_for(&root).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&seen.body)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        if !errors.is_empty() {
            failures.push(format!(
                "{} {template} {}: body does not match the schema: {}\n  body: {}",
                seen.method,
                seen.status,
                errors.join("; "),
                seen.body
            ));
        }
    }
    let missed: Vec<_> = documented.difference(&exercised).collect();
    assert!(
        failures.is_empty(),
        "answers that break the document:\n{}",
        failures.join("\n")
    );
    assert!(
        missed.is_empty(),
        "documented but never exercised: {missed:?}"
    );
    assert!(
        documented.len() >= 20,
        "{} operations documented",
        documented.len()
    );

    // The docs page is served from the binary (no CDN).
    let page = reqwest::get(format!("{base}/api/docs/"))
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("://cdn") && !html.contains("unpkg.com"),
        "no CDN: {html}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_docs_path_without_its_slash_redirects_and_a_process_without_the_shop_says_what_it_is()
{
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // The storefront's footer links /api/docs.
    let res = client.get(app.url("/api/docs")).send().await.expect("send");
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/api/docs/");
    let docs = client
        .get(app.url("/api/docs/"))
        .send()
        .await
        .expect("send");
    assert_eq!(docs.status(), 200);
    app.stop().await;

    let catalog = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["catalog"])),
            ("modules.identity.url", json!("http://127.0.0.1:9")),
        ],
    )
    .await;
    let index: Value = client
        .get(catalog.url("/"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("a JSON index");
    assert_eq!(index["modules"]["catalog"], "hosted here", "{index}");
    assert!(
        index["modules"]["cart"]
            .as_str()
            .is_some_and(|p| p.starts_with("not available")),
        "{index}"
    );
    assert_eq!(index["api_docs"], "/api/docs/");
    catalog.stop().await;
}
