//! TLS: the public listener serves HTTPS (TLS 1.3/1.2) from configured certificate files,
//! module-to-module calls use HTTPS with a configured CA, and a module may require client
//! certificates (mutual TLS). Certificates are made for the test by a throwaway CA (rcgen).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;

use crate::helpers::TestApp;

/// A CA and certificates it issued, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        for name in ["server", "client"] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("params")
                .signed_by(&key, &ca)
                .expect("sign");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("write");
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn client(&self, with_identity: bool) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).expect("ca");
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca cert"));
        if with_identity {
            let mut pem = std::fs::read(self.path("client.pem")).expect("cert");
            pem.extend(std::fs::read(self.path("client.key")).expect("key"));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        builder.build().expect("client")
    }
}

fn s(p: &Path) -> serde_json::Value {
    json!(p.display().to_string())
}

fn https(app: &TestApp, path: &str) -> String {
    app.url(path).replacen("http://", "https://", 1)
}

#[tokio::test]
async fn the_listener_serves_https_and_modules_call_each_other_over_tls() {
    let pki = Pki::new();
    let catalog = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["catalog"])),
            ("server.tls.cert_file", s(&pki.path("server.pem"))),
            ("server.tls.key_file", s(&pki.path("server.key"))),
            // Idle TLS keep-alive connections of the other apps would hold a graceful stop
            // for the whole default drain time.
            ("server.shutdown_timeout_secs", json!(1)),
        ],
    )
    .await;
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
    let main = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            (
                "server.modules",
                json!(["currency", "cart", "recommendation"]),
            ),
            ("modules.catalog.url", json!(https(&catalog, ""))),
            ("remote.ca_file", s(&pki.path("ca.pem"))),
        ],
    )
    .await;
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
    let untrusting = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            (
                "server.modules",
                json!(["currency", "cart", "recommendation"]),
            ),
            ("modules.catalog.url", json!(https(&catalog, ""))),
        ],
    )
    .await;
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
    let catalog = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("server.modules", json!(["catalog"])),
            ("server.tls.cert_file", s(&pki.path("server.pem"))),
            ("server.tls.key_file", s(&pki.path("server.key"))),
            // Idle TLS keep-alive connections of the other apps would hold a graceful stop
            // for the whole default drain time.
            ("server.shutdown_timeout_secs", json!(1)),
            ("server.tls.client_ca_file", s(&pki.path("ca.pem"))),
        ],
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
    let main = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            (
                "server.modules",
                json!(["currency", "cart", "recommendation"]),
            ),
            ("modules.catalog.url", json!(https(&catalog, ""))),
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
