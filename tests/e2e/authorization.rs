//! Who may call what, over the whole API: every operation of the OpenAPI document is called
//! as an anonymous client, as another user, as the owner of what it names, as an admin and as
//! each module of the deployment (its client certificate), and each answer is checked against
//! the access the document declares for it (`x-cleave-access`, derived from the contracts'
//! `#[op(.., access(..))]`): a caller it does not admit gets 401 (no token, no certificate) or
//! 403 with the module's refusal code, one it admits never gets a refusal, and nobody gets a
//! 5xx.

use std::collections::BTreeSet;
use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Pki, TestApp, read};

/// One kind of caller: its name in failure messages, its client, its bearer token and the
/// module its certificate names.
struct Caller {
    name: String,
    client: reqwest::Client,
    token: Option<String>,
    module: Option<String>,
}

impl Caller {
    /// Whether an operation with `access` (the document's `x-cleave-access`) admits this
    /// caller; `owner` is whether the caller owns what the call names.
    fn admitted(&self, access: &[String], owner: bool, admin: bool) -> bool {
        access.iter().any(|a| match a.as_str() {
            "anyone" => true,
            "signed_in" => self.token.is_some(),
            "owner" => owner,
            "admin" => admin,
            "any_module" => self.module.is_some(),
            other => other
                .strip_prefix("module:")
                .is_some_and(|m| self.module.as_deref() == Some(m)),
        })
    }
}

fn address() -> Value {
    json!({"street_address": "1600 Amphitheatre Parkway", "city": "Mountain View",
           "state": "CA", "country": "United States", "zip_code": "94043"})
}

fn card() -> Value {
    json!({"number": "4432-8015-6152-0454", "cvv": "672", "expiration_year": 2039,
           "expiration_month": 1})
}

fn usd(units: i64) -> Value {
    json!({"currency_code": "USD", "units": units, "nanos": 0})
}

/// A valid query and body for each operation, `owner` standing where the owner's user id
/// goes: the access rules are checked after the input is read, so a malformed example would
/// hide them. An operation missing here fails the test.
fn example(method: &str, path: &str, owner: &str) -> Option<(String, Option<Value>)> {
    let q = |s: &str| s.to_owned();
    let items = json!([{"product_id": "OLJCESPC7Z", "quantity": 1}]);
    Some(match (method, path) {
        ("GET", "/api/catalog/v1/products") => (q("q=glass"), None),
        ("GET" | "DELETE", "/api/catalog/v1/products/{id}") => (q(""), None),
        ("PUT", "/api/catalog/v1/products/{id}") => (
            q(""),
            Some(
                json!({"id": "AUTHZTEST", "name": "Teapot", "description": "Short.",
                        "picture": "/static/img/products/teapot.svg", "price_usd": usd(20),
                        "categories": ["kitchen"]}),
            ),
        ),
        ("GET", "/api/currency/v1/currencies") => (q(""), None),
        ("POST", "/api/currency/v1/convert") => {
            (q(""), Some(json!({"from": usd(3), "to_code": "EUR"})))
        }
        ("GET" | "DELETE", "/api/cart/v1/carts/{user_id}") => (q(""), None),
        ("POST", "/api/cart/v1/carts/{user_id}/items") => (
            q(""),
            Some(json!({"product_id": "OLJCESPC7Z", "quantity": 1})),
        ),
        ("GET", "/api/recommendation/v1/recommendations") => {
            (format!("user_id={owner}&product_ids=OLJCESPC7Z"), None)
        }
        ("POST", "/api/shipping/v1/quotes" | "/api/shipping/v1/shipments") => {
            (q(""), Some(json!({"address": address(), "items": items})))
        }
        ("GET", "/api/shipping/v1/shipments/{tracking_id}") => (q(""), None),
        ("POST", "/api/payment/v1/charges") => (
            q(""),
            Some(json!({"amount": usd(10), "card": card(), "reference": "authz-ref"})),
        ),
        ("GET", "/api/payment/v1/charges") => (q("reference=authz-ref"), None),
        ("GET", "/api/payment/v1/charges/{transaction_id}") => (q(""), None),
        ("POST", "/api/payment/v1/charges/{transaction_id}/refund") => (q(""), None),
        ("GET", "/api/email/v1/confirmations") => (q("order_id=authz-order"), None),
        ("POST", "/api/email/v1/confirmations") => (
            q(""),
            Some(
                json!({"message_id": "authz-message", "email": "someone@example.com",
                "order": {"order_id": "authz-order", "tracking_id": "AB-12345-1234567",
                          "shipping_cost": usd(8), "total": usd(18),
                          "lines": [{"name": "Mug", "quantity": 1, "cost": usd(10)}],
                          "address": address()}}),
            ),
        ),
        ("GET", "/api/ads/v1/ads") => (q("context_keys=kitchen"), None),
        ("PUT", "/api/ads/v1/ads/{ad_id}") => (
            q(""),
            Some(
                json!({"category": "teapots", "redirect_url": "/product/6E92ZMYYFZ",
                        "text": "Tea time."}),
            ),
        ),
        ("DELETE", "/api/ads/v1/ads/{ad_id}") => (q(""), None),
        ("POST", "/api/checkout/v1/orders") => (
            q(""),
            Some(
                json!({"user_id": owner, "user_currency": "USD", "address": address(),
                        "email": "someone@example.com", "credit_card": card()}),
            ),
        ),
        ("GET", "/api/checkout/v1/orders") => (format!("user_id={owner}"), None),
        ("GET", "/api/checkout/v1/orders/{order_id}") => (q(""), None),
        ("POST", "/api/identity/v1/users" | "/api/identity/v1/tokens") => (
            q(""),
            Some(json!({"email": "authz@example.com", "password": "a long passphrase"})),
        ),
        ("POST", "/api/identity/v1/tokens/refresh" | "/api/identity/v1/tokens/revoke") => {
            (q(""), Some(json!({"refresh_token": "not-a-refresh-token"})))
        }
        ("POST", "/api/identity/v1/guests") => (q(""), None),
        ("GET", "/api/identity/v1/me" | "/api/identity/v1/jwks") => (q(""), None),
        (
            "GET" | "DELETE",
            "/api/identity/v1/users/{user_id}/active" | "/api/identity/v1/users/{user_id}",
        ) => (q(""), None),
        _ => return None,
    })
}

/// What the shop promises, whatever the declarations say: carts, orders and checkout are
/// their owner's (an order read by id answers another user 404, as if it did not exist);
/// charges, shipments and confirmations are for admins and the checkout module only.
fn intent(method: &str, template: &str, access: &[String]) -> Option<&'static str> {
    let open = access.iter().any(|a| a == "anyone" || a == "signed_in");
    let owned = template.starts_with("/api/cart/") || template.starts_with("/api/checkout/");
    let private = template.starts_with("/api/payment/")
        || template.starts_with("/api/email/")
        || template.starts_with("/api/shipping/v1/shipments");
    if owned && open && !(method == "GET" && template.ends_with("/orders/{order_id}")) {
        return Some("carts and orders are their owner's");
    }
    if private
        && !access
            .iter()
            .all(|a| a == "admin" || a == "module:checkout")
    {
        return Some("charges, shipments and confirmations are for admins and checkout");
    }
    None
}

/// `template` with its path parameters filled: user ids with `owner`, others with valid ids
/// of things that need not exist.
fn fill(template: &str, owner: &str) -> String {
    template
        .replace("{user_id}", owner)
        .replace("{id}", "AUTHZTEST")
        .replace("{order_id}", "0190f5a0-0000-7000-8000-000000000000")
        .replace("{transaction_id}", "authz-no-such-charge")
        .replace("{tracking_id}", "AB-00000-0000000")
        .replace("{ad_id}", "authz-ad")
}

#[tokio::test]
async fn every_operation_answers_only_the_callers_its_policy_admits() {
    let pki = Pki::new();
    let path = |f: &str| json!(pki.path(f).display().to_string());
    let app = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.tls.cert_file", path("server.pem")),
            ("server.tls.key_file", path("server.key")),
            ("server.tls.client_ca_file", path("ca.pem")),
            ("server.tls.client_cert_required", json!(false)),
            ("server.shutdown_timeout_secs", json!(1)),
            // Every caller below comes from one address: room for all their calls.
            ("modules.identity.login_per_ip_per_minute", json!(1000)),
            ("modules.identity.register_per_ip_per_minute", json!(1000)),
            ("modules.identity.guests_per_ip_per_minute", json!(1000)),
        ],
    )
    .await;
    let base = app.url("").replacen("http://", "https://", 1);
    let anonymous = pki.client_as(None);
    let guest = || async {
        let answer = read(
            anonymous
                .post(format!("{base}/api/identity/v1/guests"))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let field = |f: &str| answer.body[f].as_str().expect("field").to_owned();
        (field("user_id"), field("access_token"))
    };
    let (owner, owner_token) = guest().await;
    let (_, other_token) = guest().await;
    let admin_token = app.token("authz-admin", &["admin"]).await;
    let person = |name: &str, token: Option<String>| Caller {
        name: name.to_owned(),
        client: pki.client_as(None),
        token,
        module: None,
    };
    let mut callers = vec![
        person("anonymous", None),
        person("another user", Some(other_token)),
        person("the owner", Some(owner_token.clone())),
        person("an admin", Some(admin_token.clone())),
    ];
    for module in cleave::modules::names() {
        callers.push(Caller {
            name: format!("the {module} module"),
            client: pki.client_as(Some(module)),
            token: None,
            module: Some(module.to_owned()),
        });
    }

    let doc: Value = anonymous
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .expect("get the document")
        .json()
        .await
        .expect("JSON");
    // Swagger UI's Authorize takes a bearer token; module certificates are mutual TLS.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(
        schemes["module_certificate"]["type"], "mutualTLS",
        "{schemes}"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let Some(module) = template
            .strip_prefix("/api/")
            .and_then(|rest| rest.split_once("/v1/"))
            .map(|(m, _)| m.to_owned())
        else {
            continue;
        };
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_uppercase();
            let Some(access) = op["x-cleave-access"].as_array() else {
                failures.push(format!("{method} {template} declares no access"));
                continue;
            };
            let access: Vec<String> = access
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            let Some((query, body)) = example(&method, template, &owner) else {
                failures.push(format!("{method} {template} has no example in this test"));
                continue;
            };
            checked += 1;
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let open = security
                .iter()
                .any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            if open != access.iter().any(|a| a == "anyone") {
                failures.push(format!(
                    "{method} {template}: security {security:?} vs {access:?}"
                ));
            }
            if let Some(broken) = intent(&method, template, &access) {
                failures.push(format!("{method} {template}: {broken} ({access:?})"));
            }
            let owns = op["x-cleave-owner"].is_string();
            let mut url = format!("{base}{}", fill(template, &owner));
            if !query.is_empty() {
                url = format!("{url}?{query}");
            }
            for caller in &callers {
                let mut req = caller
                    .client
                    .request(Method::from_bytes(method.as_bytes()).expect("method"), &url);
                if let Some(token) = &caller.token {
                    req = req.bearer_auth(token);
                }
                if let Some(body) = &body {
                    req = req.json(body);
                }
                let answer = read(req.send().await.expect("send")).await;
                let code = answer.body["code"].as_str().unwrap_or_default().to_owned();
                let is_owner = owns && caller.token.as_deref() == Some(owner_token.as_str());
                let is_admin = caller.token.as_deref() == Some(admin_token.as_str());
                let what = format!(
                    "{method} {template} as {}: {} {code}",
                    caller.name, answer.status
                );
                if answer.status.is_server_error() {
                    failures.push(format!("{what} (a 5xx)"));
                } else if caller.admitted(&access, is_owner, is_admin) {
                    let refused = [
                        format!("{module}.unauthenticated"),
                        format!("{module}.forbidden"),
                        "auth.unauthenticated".into(),
                        "auth.forbidden".into(),
                        "cleave.invalid_json".into(),
                    ];
                    if refused.contains(&code) {
                        failures.push(format!("{what}, but {access:?} admits it"));
                    }
                } else {
                    let want = if caller.token.is_none() && caller.module.is_none() {
                        (401, format!("{module}.unauthenticated"))
                    } else {
                        (403, format!("{module}.forbidden"))
                    };
                    if (answer.status.as_u16(), code.clone()) != want {
                        failures.push(format!("{what}, but {access:?} refuses it: want {want:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every route of every contract's operations was in the document, and checked.
    let routes: BTreeSet<(&str, &str)> = cleave::modules::MODULES
        .iter()
        .flat_map(|e| e.operations())
        .map(|op| (op.method.as_str(), op.path))
        .collect();
    assert_eq!(checked, routes.len(), "every operation's route is checked");
    app.stop().await;
}
