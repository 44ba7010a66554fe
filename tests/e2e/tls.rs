//! TLS: the public listener serves HTTPS (TLS 1.3/1.2) from configured certificate files,
//! module-to-module calls use HTTPS with a configured CA, and a module may require client
//! certificates (mutual TLS). Certificates are made for the test by a throwaway CA (rcgen).

use std::path::Path;
use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use serde_json::{Value, json};

use crate::helpers::{Pki, TestApp};

/// Where these tests say identity is: nowhere answering (they send no tokens), but every
/// process must name one to verify tokens with.
const ELSEWHERE: &str = "http://127.0.0.1:9";

fn s(p: &Path) -> serde_json::Value {
    json!(p.display().to_string())
}

/// The catalog alone, serving HTTPS with the server certificate, plus `extra` settings.
async fn tls_catalog(pki: &Pki, extra: &[(&str, Value)]) -> TestApp {
    let mut keys = vec![
        ("server.modules", json!(["catalog"])),
        ("modules.identity.url", json!(ELSEWHERE)),
        ("server.tls.cert_file", s(&pki.path("server.pem"))),
        ("server.tls.key_file", s(&pki.path("server.key"))),
        // Idle TLS keep-alive connections of the other apps would hold a graceful stop for
        // the whole default drain time.
        ("server.shutdown_timeout_secs", json!(1)),
    ];
    keys.extend(extra.iter().cloned());
    TestApp::start(Some(Arc::new(TestDb::sqlite())), &keys).await
}

/// A process hosting currency, cart and recommendation that reaches `catalog` at its HTTPS
/// url, with `extra` settings (what it trusts, what it presents).
async fn calling(catalog: &TestApp, extra: &[(&str, Value)]) -> TestApp {
    let mut settings = vec![
        (
            "server.modules",
            json!(["currency", "cart", "recommendation"]),
        ),
        ("modules.identity.url", json!(ELSEWHERE)),
        ("modules.catalog.url", json!(https(catalog, ""))),
    ];
    settings.extend(extra.iter().cloned());
    TestApp::start(Some(Arc::new(TestDb::sqlite())), &settings).await
}

fn https(app: &TestApp, path: &str) -> String {
    app.url(path).replacen("http://", "https://", 1)
}

#[tokio::test]
async fn the_listener_serves_https_and_modules_call_each_other_over_tls() {
    let pki = Pki::new();
    let catalog = tls_catalog(&pki, &[]).await;
    let res = pki
        .client(false)
        .get(https(&catalog, "/api/catalog/v1/products/OLJCESPC7Z"))
        .send()
        .await
        .expect("https request");
    assert_eq!(res.status(), 200);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        reqwest::get(catalog.url("/api/catalog/v1/products"))
            .await
            .is_err()
            || reqwest::get(catalog.url("/api/catalog/v1/products"))
                .await
                .is_ok_and(|r| r.status() != 200),
        "plain HTTP is not served"
    );

    // Another process reaches the catalog over HTTPS, trusting the configured CA.
    let main = calling(&catalog, &[("remote.ca_file", s(&pki.path("ca.pem")))]).await;
    let forwarded = reqwest::get(main.url("/api/catalog/v1/products/OLJCESPC7Z"))
        .await
        .expect("request");
    assert_eq!(forwarded.status(), 200, "forwarded over TLS");
    let recs = reqwest::get(
        main.url("/api/recommendation/v1/recommendations?user_id=u&product_ids=OLJCESPC7Z"),
    )
    .await
    .expect("request");
    assert_eq!(recs.status(), 200, "module calls over TLS");

    // Without the CA, the certificate is not trusted: the call fails as unavailable.
    let untrusting = calling(&catalog, &[]).await;
    let refused = reqwest::get(untrusting.url("/api/catalog/v1/products/OLJCESPC7Z"))
        .await
        .expect("request");
    assert_eq!(refused.status(), 503);
    for app in [untrusting, main, catalog] {
        app.stop().await;
    }
}

#[tokio::test]
async fn a_module_requiring_client_certificates_refuses_callers_without_one() {
    let pki = Pki::new();
    let catalog = tls_catalog(
        &pki,
        &[("server.tls.client_ca_file", s(&pki.path("ca.pem")))],
    )
    .await;
    let url = https(&catalog, "/api/catalog/v1/products");
    assert!(
        pki.client(false).get(&url).send().await.is_err(),
        "no client certificate, no connection"
    );
    let ok = pki
        .client(true)
        .get(&url)
        .send()
        .await
        .expect("with a client certificate");
    assert_eq!(ok.status(), 200);

    // A process configured with a client certificate calls it (mutual TLS).
    let main = calling(
        &catalog,
        &[
            ("remote.ca_file", s(&pki.path("ca.pem"))),
            ("remote.client_cert_file", s(&pki.path("client.pem"))),
            ("remote.client_key_file", s(&pki.path("client.key"))),
        ],
    )
    .await;
    let res = reqwest::get(main.url("/api/catalog/v1/products/OLJCESPC7Z"))
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    main.stop().await;
    catalog.stop().await;
}

#[tokio::test]
async fn an_internal_process_answers_only_modules_that_prove_themselves_and_signed_in_users() {
    let pki = Pki::new();
    let internal = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["identity", "catalog"])),
            ("server.tls.cert_file", s(&pki.path("server.pem"))),
            ("server.tls.key_file", s(&pki.path("server.key"))),
            ("server.tls.client_ca_file", s(&pki.path("ca.pem"))),
            ("server.tls.client_cert_required", json!(false)),
            ("server.require_caller_proof", json!(true)),
            ("server.shutdown_timeout_secs", json!(1)),
        ],
    )
    .await;
    let url = https(&internal, "/api/catalog/v1/products/OLJCESPC7Z");
    // Anonymous, and a certificate that names no module: refused.
    for caller in [None, Some("client")] {
        let res = pki.client_as(caller).get(&url).send().await.expect("send");
        let answer = crate::helpers::read(res).await;
        answer.assert_problem(401, "auth.unauthenticated");
    }
    // A module of the deployment (its certificate says which) is answered.
    let res = pki
        .client_as(Some("checkout"))
        .get(&url)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    // So is a signed-in user (a bearer token), and the public API document and keys.
    let token = internal.token("someone", &["shopper"]).await;
    let res = pki
        .client_as(None)
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    for public in ["/api/openapi.json", "/api/identity/v1/jwks"] {
        let res = pki
            .client_as(None)
            .get(https(&internal, public))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200, "{public}");
    }

    // An edge process calling it with its module certificate serves anonymous shoppers.
    let edge = |cert: bool| {
        let mut keys = vec![
            (
                "server.modules",
                json!(["currency", "cart", "recommendation"]),
            ),
            ("modules.identity.url", json!(ELSEWHERE)),
            ("modules.catalog.url", json!(https(&internal, ""))),
            ("modules.identity.url", json!(https(&internal, ""))),
            ("remote.ca_file", s(&pki.path("ca.pem"))),
        ];
        if cert {
            keys.push(("remote.client_cert_file", s(&pki.path("checkout.pem"))));
            keys.push(("remote.client_key_file", s(&pki.path("checkout.key"))));
        }
        keys
    };
    let proven = TestApp::start(Some(Arc::new(TestDb::sqlite())), &edge(true)).await;
    let recs = "/api/recommendation/v1/recommendations?user_id=u&product_ids=OLJCESPC7Z";
    assert_eq!(
        reqwest::get(proven.url(recs)).await.expect("send").status(),
        200
    );
    let unproven = TestApp::start(Some(Arc::new(TestDb::sqlite())), &edge(false)).await;
    assert_eq!(
        reqwest::get(unproven.url(recs))
            .await
            .expect("send")
            .status(),
        503,
        "without a module certificate the internal catalog refuses the edge"
    );
    for app in [unproven, proven, internal] {
        app.stop().await;
    }
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_gets_past_the_caller_proof() {
    let internal = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["catalog", "payment"])),
            ("modules.identity.url", json!(ELSEWHERE)),
            ("server.require_caller_proof", json!(true)),
        ],
    )
    .await;
    for path in [
        "/api/payment/v1/charges?reference=x",
        "/%61pi/payment/v1/charges?reference=x",
        "/api/%70ayment/v1/charges?reference=x",
        "//api//payment/v1/charges?reference=x",
        "/api/docs/../payment/v1/charges?reference=x",
        "/api/docs/%2e%2e/payment/v1/charges?reference=x",
        "/api/identity/v1/jwks/../../catalog/v1/products",
        "/api/./catalog/v1/products/OLJCESPC7Z",
    ] {
        let answer = crate::helpers::raw(&internal.base, "GET", path, None).await;
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
        assert_eq!(answer.body["code"], "auth.unauthenticated", "{path}");
    }
    // Case variants route nowhere (the router matches exact, case-sensitive paths): refused
    // under /api/, not found elsewhere; never answered.
    for (path, status) in [
        ("/API/payment/v1/charges?reference=x", 404),
        ("/api/Payment/v1/charges?reference=x", 401),
    ] {
        let answer = crate::helpers::raw(&internal.base, "GET", path, None).await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
    }
    internal.stop().await;
}

#[tokio::test]
async fn only_checkout_and_admins_refund_and_a_forwarding_process_lends_no_certificate() {
    let pki = Pki::new();
    let payment = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["payment"])),
            ("modules.identity.url", json!(ELSEWHERE)),
            ("server.tls.cert_file", s(&pki.path("server.pem"))),
            ("server.tls.key_file", s(&pki.path("server.key"))),
            ("server.tls.client_ca_file", s(&pki.path("ca.pem"))),
            ("server.tls.client_cert_required", json!(false)),
            ("server.shutdown_timeout_secs", json!(1)),
        ],
    )
    .await;
    let refund = https(&payment, "/api/payment/v1/charges/no-such-charge/refund");
    let as_caller = |cert: Option<&'static str>| {
        let client = pki.client_as(cert);
        let refund = refund.clone();
        async move { crate::helpers::read(client.post(refund).send().await.expect("send")).await }
    };
    as_caller(None)
        .await
        .assert_problem(401, "payment.unauthenticated");
    // Another module's certificate does not refund: the ads module needs no refunds.
    as_caller(Some("ads"))
        .await
        .assert_problem(403, "payment.forbidden");
    // Checkout's does (the charge does not exist, so the answer is the payment's 404).
    as_caller(Some("checkout"))
        .await
        .assert_problem(404, "payment.transaction_not_found");

    // A process that forwards a client's request presents its own (checkout) certificate,
    // but says it forwards: the client is anonymous, and so is the call.
    let edge = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["catalog"])),
            ("modules.identity.url", json!(ELSEWHERE)),
            ("modules.payment.url", json!(https(&payment, ""))),
            ("remote.ca_file", s(&pki.path("ca.pem"))),
            ("remote.client_cert_file", s(&pki.path("checkout.pem"))),
            ("remote.client_key_file", s(&pki.path("checkout.key"))),
        ],
    )
    .await;
    let forwarded = crate::helpers::read(
        reqwest::Client::new()
            .post(edge.url("/api/payment/v1/charges/no-such-charge/refund"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    forwarded.assert_problem(401, "payment.unauthenticated");
    for app in [edge, payment] {
        app.stop().await;
    }
}
