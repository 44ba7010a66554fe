//! Starting the application in process, and calling it.

use std::path::PathBuf;
use std::sync::Arc;

use cleave::config::{AppConfig, Settings};
use cleave::wiring;
use cleave_kernel::testing::TestDb;
use figment::Figment;
use figment::providers::Serialized;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

/// One running application.
pub(crate) struct TestApp {
    pub(crate) base: Url,
    handle: actix_web::dev::ServerHandle,
    _db: Option<Arc<TestDb>>,
}

impl TestApp {
    /// Starts the app with `keys` (dotted key, value) over the built-in defaults, listening
    /// on a random port, with its own `db`.
    pub(crate) async fn start(db: Option<Arc<TestDb>>, keys: &[(&str, Value)]) -> Self {
        let mut figment = Figment::from(Serialized::defaults(AppConfig::default()))
            .merge(("server.listen", "127.0.0.1:0"))
            .merge(("server.workers", 1));
        if let Some(db) = &db {
            figment = figment.merge(("database.url", db.url.clone()));
        }
        for (k, v) in keys {
            figment = figment.merge((*k, v.clone()));
        }
        let settings = Settings::from_figment(figment).expect("valid test settings");
        let shop = wiring::assemble(&settings).await.expect("assemble");
        let running = wiring::bind(&settings, shop).expect("bind");
        let base = Url::parse(&format!("http://{}", running.addr)).expect("url");
        let handle = running.handle.clone();
        tokio::spawn(running.server);
        Self {
            base,
            handle,
            _db: db,
        }
    }

    /// Every module in one process.
    pub(crate) async fn single(db: Arc<TestDb>) -> Self {
        Self::start(Some(db), &[]).await
    }

    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
    }

    /// A token for `sub` with `roles`, signed by the app's own identity module (same
    /// database, same keys), as `cleave token issue` would make it.
    pub(crate) async fn token(&self, sub: &str, roles: &[&str]) -> String {
        let db = self._db.as_ref().expect("the app has a database");
        let identity = identity::IdentityModule::start(
            db.connect().await,
            &Default::default(),
            identity::IdentityDeps,
            cleave_kernel::events::Relay::disabled(),
        )
        .await
        .expect("identity");
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        identity.issue_token(sub, &roles, 300).await.expect("token")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }
}

/// What a call answered: status, content type and JSON body (request ids removed, so answers
/// of different runs compare equal).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

impl Answer {
    /// Asserts a problem+json answer with `status` and `code`.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {self:?}");
        assert_eq!(
            self.content_type, "application/problem+json",
            "content type of {self:?}"
        );
        assert_eq!(self.body["code"], code, "code of {self:?}");
        assert_eq!(self.body["status"], status, "status member of {self:?}");
        assert!(self.body["title"].is_string(), "title of {self:?}");
    }
}

/// A client for the tests' calls: it trusts the shared test CA ([`Pki::shared`]), so the same
/// helpers call plain and HTTPS processes.
pub(crate) fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// [`client`]'s builder, for clients that need more (no redirects, cookies).
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    static CA: std::sync::OnceLock<reqwest::Certificate> = std::sync::OnceLock::new();
    let ca = CA.get_or_init(|| {
        let pem = std::fs::read(Pki::shared().join("ca.pem")).expect("the shared test CA");
        reqwest::Certificate::from_pem(&pem).expect("CA certificate")
    });
    reqwest::Client::builder().add_root_certificate(ca.clone())
}

/// Sends a request with an optional raw body (JSON content type) and reads the answer.
pub(crate) async fn call(base: &str, method: Method, path: &str, body: Option<&str>) -> Answer {
    call_as(base, method, path, body, None).await
}

/// [`call`] with an optional bearer token.
pub(crate) async fn call_as(
    base: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Answer {
    let mut req = client().request(method, format!("{}{path}", base.trim_end_matches('/')));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    read(req.send().await.expect("request sent")).await
}

/// Sends a request with an optional JSON body and bearer token, and reads the answer.
pub(crate) async fn call_json(
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Answer {
    let body = body.map(|b| b.to_string());
    call_as(base, method, path, body.as_deref(), token).await
}

/// Trades `refresh_token` for a new token pair (`POST /api/identity/v1/tokens/refresh`).
pub(crate) async fn refresh(base: &str, refresh_token: &str) -> Answer {
    let body = serde_json::json!({ "refresh_token": refresh_token });
    let path = "/api/identity/v1/tokens/refresh";
    call_json(base, Method::POST, path, Some(body), None).await
}

pub(crate) async fn read(res: reqwest::Response) -> Answer {
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res.bytes().await.expect("body");
    let mut body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    if let Some(obj) = body.as_object_mut()
        && content_type.starts_with("application/problem+json")
    {
        assert!(
            obj.remove("request_id").is_some_and(|v| v.is_string()),
            "problem has a request id"
        );
    }
    Answer {
        status,
        content_type,
        body,
    }
}

pub(crate) async fn get(base: &str, path: &str) -> Answer {
    call(base, Method::GET, path, None).await
}

/// An order of `user` in `currency`, paid with `card`, shipped to Boutique's address.
pub(crate) fn order_body(user: &str, currency: &str, card: &str) -> String {
    serde_json::json!({
        "user_id": user,
        "user_currency": currency,
        "address": {
            "street_address": "1600 Amphitheatre Parkway",
            "city": "Mountain View",
            "state": "CA",
            "country": "United States",
            "zip_code": "94043"
        },
        "email": "someone@example.com",
        "credit_card": {
            "number": card,
            "cvv": "672",
            "expiration_year": 2039,
            "expiration_month": 1
        }
    })
    .to_string()
}

/// A guest's user id and access token, from `POST /api/identity/v1/guests` on `base`.
pub(crate) async fn guest(base: &str) -> (String, String) {
    let answer = call(base, Method::POST, "/api/identity/v1/guests", None).await;
    assert_eq!(answer.status, 201, "a guest token: {answer:?}");
    let field = |name: &str| {
        answer.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {answer:?}"))
            .to_owned()
    };
    (field("user_id"), field("access_token"))
}

/// The same API calls, in order, against `base`, as a new guest (a token from `base`): what
/// must answer the same in every placement. Labels and bodies name the guest `{user}`.
pub(crate) async fn script(base: &str) -> Vec<(String, Answer)> {
    let (user, token) = guest(base).await;
    let calls: Vec<(Method, String, Option<String>)> = vec![
        (Method::GET, "/api/catalog/v1/products".into(), None),
        (
            Method::GET,
            "/api/catalog/v1/products/OLJCESPC7Z".into(),
            None,
        ),
        (
            Method::GET,
            "/api/catalog/v1/products?q=KITCHEN".into(),
            None,
        ),
        (Method::GET, "/api/catalog/v1/products?q=glass".into(), None),
        (
            Method::GET,
            "/api/catalog/v1/products/NOSUCHTHING".into(),
            None,
        ),
        (
            Method::GET,
            "/api/catalog/v1/products/bad%20id".into(),
            None,
        ),
        (Method::GET, "/api/currency/v1/currencies".into(), None),
        (
            Method::POST,
            "/api/currency/v1/convert".into(),
            Some(
                r#"{"from":{"currency_code":"USD","units":109,"nanos":990000000},"to_code":"EUR"}"#
                    .into(),
            ),
        ),
        (
            Method::POST,
            "/api/currency/v1/convert".into(),
            Some(r#"{"from":{"currency_code":"USD","units":1,"nanos":0},"to_code":"XYZ"}"#.into()),
        ),
        (Method::GET, format!("/api/cart/v1/carts/{user}"), None),
        (
            Method::POST,
            format!("/api/cart/v1/carts/{user}/items"),
            Some(r#"{"product_id":"OLJCESPC7Z","quantity":2}"#.into()),
        ),
        (
            Method::POST,
            format!("/api/cart/v1/carts/{user}/items"),
            Some(r#"{"product_id":"66VCHSJNUP","quantity":1}"#.into()),
        ),
        (
            Method::POST,
            format!("/api/cart/v1/carts/{user}/items"),
            Some(r#"{"product_id":"66VCHSJNUP","quantity":0}"#.into()),
        ),
        (Method::GET, format!("/api/cart/v1/carts/{user}"), None),
        (Method::DELETE, format!("/api/cart/v1/carts/{user}"), None),
        (Method::GET, format!("/api/cart/v1/carts/{user}"), None),
        (
            Method::GET,
            // A fixed user: recommendations are seeded by the user id.
            "/api/recommendation/v1/recommendations?user_id=shopper&product_ids=OLJCESPC7Z,66VCHSJNUP"
                .into(),
            None,
        ),
        (
            Method::GET,
            "/api/recommendation/v1/recommendations?user_id=x&product_ids=bad!".into(),
            None,
        ),
        (
            Method::POST,
            format!("/api/cart/v1/carts/{user}/items"),
            Some(format!(
                r#"{{"product_id":"OLJCESPC7Z","quantity":1,"pad":"{}"}}"#,
                "x".repeat(70_000)
            )),
        ),
        (Method::PUT, "/api/currency/v1/currencies".into(), None),
    ];
    let mut out = Vec::new();
    for (method, path, body) in calls {
        let label = format!("{method} {path}").replace(&user, "{user}");
        let mut answer = call_as(base, method, &path, body.as_deref(), Some(&token)).await;
        if answer.body["user_id"] == user.as_str() {
            answer.body["user_id"] = "{user}".into();
        }
        out.push((label, answer));
    }
    out
}

/// An answer to a request sent byte for byte ([`raw`]).
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Value,
}

impl RawAnswer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` exactly as written (HTTP clients resolve dot segments and may
/// re-encode paths before sending; attackers do not), with a JSON `body`, over a connection
/// of its own, and reads the answer.
pub(crate) async fn raw(base: &Url, method: &str, path: &str, body: Option<&str>) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.host_str().expect("host");
    let port = base.port().expect("port");
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .expect("connect");
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawAnswer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// A CA and certificates it issued, written as PEM files in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        // The server, a client, and every module of the deployment, named in its certificate
        // (`<module>.modules.cleave`).
        let local = || vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut certs = vec![
            ("server".to_owned(), local()),
            ("client".to_owned(), local()),
        ];
        certs.extend(
            cleave::modules::names()
                .into_iter()
                .map(|m| (m.to_owned(), vec![format!("{m}.modules.cleave")])),
        );
        for (name, sans) in certs {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &ca)
                .expect("sign");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("write");
        }
        Self { dir }
    }

    /// The directory of a CA and server certificate (for localhost and 127.0.0.1) that
    /// `cleave certs init` made once for this test run, trusted by [`client`].
    pub(crate) fn shared() -> &'static std::path::Path {
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            // In the target directory, made afresh by each run (one test binary runs at a time).
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-ca");
            let _ = std::fs::remove_dir_all(&dir);
            cleave::certs::init(&dir, &["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("cleave certs init");
            dir
        })
    }

    /// A directory holding the [shared](Self::shared) CA and server certificate, and one
    /// certificate per group of modules, as `cleave certs issue --module a,b` makes it
    /// (`a+b.pem`): what the processes of one deployment present.
    pub(crate) fn shared_for(groups: &[Vec<&str>]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        for entry in std::fs::read_dir(Self::shared()).expect("shared CA") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        let me = Self { dir };
        for group in groups {
            me.cleave_certs(&["issue", "--module", &group.join(",")]);
        }
        me
    }

    /// Runs `cleave certs ARGS --dir <this directory>`.
    fn cleave_certs(&self, args: &[&str]) {
        succeeded(
            std::process::Command::new(env!("CARGO_BIN_EXE_cleave"))
                .arg("certs")
                .args(args)
                .arg("--dir")
                .arg(self.dir.path()),
        );
    }

    /// The certificates `cleave certs init` and `cleave certs issue --module <m>` make, for
    /// every module.
    pub(crate) fn made_by_cleave() -> Self {
        let me = Self {
            dir: tempfile::tempdir().expect("dir"),
        };
        me.cleave_certs(&["init"]);
        for module in cleave::modules::names() {
            me.cleave_certs(&["issue", "--module", module]);
        }
        me
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub(crate) fn client(&self, with_identity: bool) -> reqwest::Client {
        self.client_as(with_identity.then_some("client"))
    }

    /// A client trusting the CA, presenting the certificate `name` if given.
    pub(crate) fn client_as(&self, name: Option<&str>) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).expect("ca");
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca cert"));
        if let Some(name) = name {
            let mut pem = std::fs::read(self.path(&format!("{name}.pem"))).expect("cert");
            pem.extend(std::fs::read(self.path(&format!("{name}.key"))).expect("key"));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        builder.build().expect("client")
    }
}

/// A port nothing listens on now (for processes that must know each other's addresses
/// before they start, or be restarted on the same one).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `n` distinct ports nothing listens on now: all bound at once, so that none is handed out
/// twice (a port just freed can come back from the next bind).
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("its address").port())
        .collect()
}

/// A SQLite url for the file `name` in `dir`.
pub(crate) fn sqlite_in(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(name).display())
}

/// An access token for `sub` with `role`, issued by `cleave token issue` against the
/// identity database `url`.
pub(crate) fn issued_token(url: &str, sub: &str, role: &str) -> String {
    crate::identity::admin(
        &[
            "token", "issue", "--sub", sub, "--role", role, "--ttl", "600",
        ],
        url,
        "",
    )
    .trim()
    .to_owned()
}

/// The items of `user`'s cart, read with their `token`.
pub(crate) async fn cart_items(base: &str, user: &str, token: &str) -> Value {
    let cart = call_as(
        base,
        Method::GET,
        &format!("/api/cart/v1/carts/{user}"),
        None,
        Some(token),
    )
    .await;
    assert_eq!(cart.status, 200, "{cart:?}");
    cart.body["items"].clone()
}

/// The settings of a process that serves HTTPS and tells the module certificates of `pki`
/// apart (checkout's may charge, refund and empty carts), trusting the deployment's CA for
/// its own calls; identity at `identity` (`None`: hosted here).
pub(crate) fn tls_env(pki: &Pki, db: &str, identity: Option<&str>) -> Vec<(&'static str, String)> {
    let path = |f: &str| pki.path(f).display().to_string();
    let mut env = vec![
        ("CLEAVE_DATABASE__URL", db.to_owned()),
        ("CLEAVE_REMOTE__CA_FILE", path("ca.pem")),
        ("CLEAVE_SERVER__TLS__CERT_FILE", path("server.pem")),
        ("CLEAVE_SERVER__TLS__KEY_FILE", path("server.key")),
        ("CLEAVE_SERVER__TLS__CLIENT_CA_FILE", path("ca.pem")),
        ("CLEAVE_SERVER__TLS__CLIENT_CERT_REQUIRED", "false".into()),
        ("CLEAVE_SERVER__SHUTDOWN_TIMEOUT_SECS", "1".into()),
    ];
    if let Some(identity) = identity {
        env.push(("CLEAVE_MODULES__IDENTITY__URL", identity.to_owned()));
    }
    env
}

/// Runs `cmd` to its end; its output, once it has succeeded (the test fails with its output
/// otherwise).
pub(crate) fn succeeded(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
