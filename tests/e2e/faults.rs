//! Faults with real processes: a dependency stopped (SIGSTOP) and continued, a dependency
//! slow or silent (latency, a black hole), a dependency whose port resets every connection,
//! and a charge whose answer is cut on its way back, injected by a TCP proxy between the
//! processes ([`FaultProxy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{call_as, client, get, read, sqlite_in};
use crate::process::Cleave;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Carries them both ways.
    Pass,
    /// Resets every new connection as soon as it is accepted, and closes an open one when a
    /// request comes on it: a port where nothing answers.
    Reset,
    /// Cuts the next answer after its first bytes (closing both sides), then carries again.
    CutNextAnswer,
    /// Carries both ways, holding each piece of an answer this long first: a slow network
    /// or a slow dependency.
    Delay(std::time::Duration),
    /// Takes connections and requests and never answers, never closes: a black hole (a host
    /// gone without a reset, a firewall dropping packets).
    BlackHole,
}

/// A TCP proxy on a port of its own in front of `target`, injecting [`Fault`]s. It counts
/// the attempts it refused (connections reset, requests on open ones dropped) and the
/// answers it cut.
pub(crate) struct FaultProxy {
    port: u16,
    fault: Arc<std::sync::Mutex<Fault>>,
    refused: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let fault = Arc::new(std::sync::Mutex::new(Fault::Pass));
        let (refused, cut) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counts = Counts {
            refused: refused.clone(),
            cut: cut.clone(),
        };
        let shared = fault.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (fault, counts) = (shared.clone(), counts.clone());
                tokio::spawn(carry(client, target.clone(), fault, counts));
            }
        });
        Self {
            port,
            fault,
            refused,
            cut,
            task,
        }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().expect("lock") = fault;
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the proxy counts.
#[derive(Clone)]
struct Counts {
    refused: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
}

/// One proxied connection.
async fn carry(
    client: TcpStream,
    target: String,
    fault: Arc<std::sync::Mutex<Fault>>,
    counts: Counts,
) {
    let now = || *fault.lock().expect("lock");
    if now() == Fault::Reset {
        counts.refused.fetch_add(1, Ordering::SeqCst);
        // An RST, not a FIN: linger zero, then close. (Deprecated because a non-zero linger
        // blocks the thread on drop; a zero one resets at once.)
        #[allow(deprecated)]
        let _ = client.set_linger(Some(std::time::Duration::ZERO));
        return;
    }
    if now() == Fault::BlackHole {
        counts.refused.fetch_add(1, Ordering::SeqCst);
        swallow(client).await;
        return;
    }
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = client_in.read(&mut buf).await {
            if n > 0 && now() == Fault::Reset {
                // A request on a connection opened before: it goes nowhere.
                counts.refused.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if n > 0 && now() == Fault::BlackHole {
                // Nor here, and nothing says so: the caller waits.
                counts.refused.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            if n == 0 || server_out.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_out.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = server_in.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let cutting = {
                let mut f = fault.lock().expect("lock");
                let cutting = *f == Fault::CutNextAnswer;
                if cutting {
                    *f = Fault::Pass;
                }
                cutting
            };
            if cutting {
                // A few bytes of the answer, then the connection is gone.
                let _ = client_out.write_all(&buf[..n.min(8)]).await;
                counts.cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if let Fault::Delay(latency) = now() {
                // The injected latency itself (not a wait for something to happen).
                tokio::time::sleep(latency).await;
            }
            if client_out.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_out.shutdown().await;
    };
    // Whichever side ends first ends the connection (a cut answer closes both).
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// Reads whatever `client` sends and never answers, until the caller gives up.
async fn swallow(mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Identity, the catalog, and a process with currency, cart and recommendation calling the
/// catalog (through a [`FaultProxy`] when asked, which is then put in the slot).
pub(crate) struct Shop {
    pub(crate) identity: Cleave,
    pub(crate) catalog: Cleave,
    pub(crate) main: Cleave,
    _dir: tempfile::TempDir,
}

impl Shop {
    /// The url of the SQLite database `name` of the shop's processes (`identity.db`,
    /// `catalog.db`, `main.db`).
    pub(crate) fn db(&self, name: &str) -> String {
        sqlite_in(self._dir.path(), name)
    }

    pub(crate) async fn start(proxy_to_catalog: Option<&mut Option<FaultProxy>>) -> Self {
        // The main process's breakers stay open one second at a time, and it keeps no
        // catalog answer: every read reaches the catalog and its faults.
        let breaker = [
            ("CLEAVE_REMOTE__BREAKER__OPEN_MS", "1000".to_owned()),
            ("CLEAVE_REMOTE__BREAKER__MAX_OPEN_MS", "1000".to_owned()),
            ("CLEAVE_REMOTE__CACHE_TTL_MS", "0".to_owned()),
        ];
        let dir = tempfile::tempdir().expect("dir");
        let db = |name: &str| sqlite_in(dir.path(), name);
        let identity = Cleave::serve(
            &["--modules", "identity"],
            &[("CLEAVE_DATABASE__URL", db("identity.db"))],
        );
        let catalog = Cleave::serve(
            &["--modules", "catalog"],
            &[
                ("CLEAVE_DATABASE__URL", db("catalog.db")),
                ("CLEAVE_MODULES__IDENTITY__URL", identity.base()),
            ],
        );
        let catalog_url = match proxy_to_catalog {
            Some(slot) => {
                let target = catalog.base().trim_start_matches("http://").to_owned();
                let proxy = FaultProxy::start(target).await;
                let url = format!("http://127.0.0.1:{}", proxy.port);
                *slot = Some(proxy);
                url
            }
            None => catalog.base(),
        };
        let mut env = vec![
            ("CLEAVE_DATABASE__URL", db("main.db")),
            ("CLEAVE_MODULES__CATALOG__URL", catalog_url),
            ("CLEAVE_MODULES__IDENTITY__URL", identity.base()),
        ];
        env.extend(breaker);
        let main = Cleave::serve(&["--modules", "currency,cart,recommendation"], &env);
        Self {
            identity,
            catalog,
            main,
            _dir: dir,
        }
    }
}

/// A read forwarded to the catalog, and one the recommendation module makes of it.
const NEEDS_CATALOG: [&str; 2] = [
    "/api/catalog/v1/products/OLJCESPC7Z",
    "/api/recommendation/v1/recommendations?user_id=u&product_ids=",
];

#[tokio::test]
async fn a_stopped_dependency_is_answered_for_within_the_deadline_and_serves_again_when_continued()
{
    let shop = Shop::start(None).await;
    let base = shop.main.base();
    for path in NEEDS_CATALOG {
        assert_eq!(get(&base, path).await.status, 200, "{path}");
    }

    shop.catalog.signal("STOP");
    // A bound for the test, not a synchronisation: a hang fails it after 30 s.
    let patient = crate::helpers::client_builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    for path in NEEDS_CATALOG {
        // A caller with one second to spare gets an answer, not a hang.
        let res = patient
            .get(format!("{base}{path}"))
            .header("x-cleave-deadline-ms", "1000")
            .send()
            .await
            .expect("an answer");
        let answer = read(res).await;
        assert!(
            matches!(answer.status.as_u16(), 503 | 504),
            "{path}: {answer:?}"
        );
        assert!(
            answer.content_type.starts_with("application/problem+json"),
            "{answer:?}"
        );
    }

    shop.catalog.signal("CONT");
    for path in NEEDS_CATALOG {
        assert_eq!(get(&base, path).await.status, 200, "{path} after SIGCONT");
    }
}

#[tokio::test]
async fn a_slow_or_silent_dependency_is_answered_for_within_the_deadline() {
    let mut proxy = None;
    let shop = Shop::start(Some(&mut proxy)).await;
    let proxy = proxy.expect("proxy");
    let base = shop.main.base();
    // A bound for the test, not a synchronisation: a hang fails it after 30 s.
    let patient = crate::helpers::client_builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let ask = |deadline_ms: u64| {
        let patient = patient.clone();
        let url = format!("{base}{}", NEEDS_CATALOG[0]);
        async move {
            let res = patient
                .get(url)
                .header("x-cleave-deadline-ms", deadline_ms.to_string())
                .send()
                .await
                .expect("an answer, not a hang");
            read(res).await
        }
    };

    // Slower, within the budget: served.
    proxy.set(Fault::Delay(std::time::Duration::from_millis(300)));
    assert_eq!(
        ask(10_000).await.status,
        200,
        "a slow answer within the deadline"
    );

    // Slower than the budget: the caller is answered when its deadline passes, with 504.
    proxy.set(Fault::Delay(std::time::Duration::from_secs(20)));
    ask(1000).await.assert_problem(504, "cleave.timeout");

    // A black hole: nothing answers, nothing resets; still an answer within the deadline.
    proxy.set(Fault::BlackHole);
    for _ in 0..3 {
        let answer = ask(1000).await;
        assert!(matches!(answer.status.as_u16(), 503 | 504), "{answer:?}");
        assert!(
            answer.content_type.starts_with("application/problem+json"),
            "{answer:?}"
        );
    }
    assert!(proxy.refused() > 0, "the requests went into the black hole");

    // Back: once the breaker's open period is over (Retry-After), reads flow again.
    proxy.set(Fault::Pass);
    served_after_retry_after(&base).await;
}

/// A caller that waits as a 503 says (Retry-After, the breaker's open period) gets through:
/// the breaker's probe succeeds and calls flow.
async fn served_after_retry_after(base: &str) {
    let res = client()
        .get(format!("{base}{}", NEEDS_CATALOG[0]))
        .send()
        .await
        .expect("send");
    if res.status() != 200 {
        // Still open: the 503 says when to come back.
        assert_eq!(res.status(), 503);
        let wait: u64 = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .expect("an open breaker's 503 says when to retry");
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        assert_eq!(get(base, NEEDS_CATALOG[0]).await.status, 200);
    }
}

#[tokio::test]
async fn with_a_dependency_dead_its_port_sees_at_most_a_tenth_more_calls_than_offered() {
    let mut proxy = None;
    let shop = Shop::start(Some(&mut proxy)).await;
    let proxy = proxy.expect("proxy");
    let base = shop.main.base();
    assert_eq!(get(&base, NEEDS_CATALOG[0]).await.status, 200);

    proxy.set(Fault::Reset);
    let offered = 100;
    for i in 0..offered {
        let answer = get(&base, NEEDS_CATALOG[i % 2]).await;
        assert_eq!(answer.status, 503, "call {i}: {answer:?}");
    }
    let reached = proxy.refused();
    assert!(reached > 0, "the calls went to the dead port");
    assert!(
        reached * 10 <= offered * 11,
        "{reached} attempts reached the dead port for {offered} calls"
    );

    // Alive again.
    proxy.set(Fault::Pass);
    served_after_retry_after(&base).await;
}

#[tokio::test]
async fn a_charge_whose_answer_is_cut_is_sent_again_with_its_reference_and_charges_once() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = crate::helpers::Pki::made_by_cleave();
    let path = |f: &str| pki.path(f).display().to_string();
    let tls = |db: &str| crate::helpers::tls_env(&pki, &sqlite_in(dir.path(), db), None);
    let cart = Cleave::serve(&["--modules", "identity,cart"], &tls("identity.db"));
    let mut payment_env = tls("payment.db");
    payment_env.push(("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()));
    payment_env.push(("CLEAVE_LOG__ACCESS", "true".into()));
    let mut payment = Cleave::serve(&["--modules", "payment"], &payment_env);
    let proxy = FaultProxy::start(payment.https_base().trim_start_matches("https://").into()).await;
    // Checkout serves plain HTTP to the test, and calls the others over HTTPS.
    let env = vec![
        ("CLEAVE_DATABASE__URL", sqlite_in(dir.path(), "checkout.db")),
        ("CLEAVE_REMOTE__CA_FILE", path("ca.pem")),
        ("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()),
        ("CLEAVE_MODULES__CART__URL", cart.https_base()),
        (
            "CLEAVE_MODULES__PAYMENT__URL",
            format!("https://127.0.0.1:{}", proxy.port),
        ),
        ("CLEAVE_REMOTE__CLIENT_CERT_FILE", path("checkout.pem")),
        ("CLEAVE_REMOTE__CLIENT_KEY_FILE", path("checkout.key")),
    ];
    let checkout = Cleave::serve(
        &["--modules", "catalog,currency,shipping,email,checkout"],
        &env,
    );
    let base = checkout.base();
    let user = "cut-shopper";
    let identity_db = sqlite_in(dir.path(), "identity.db");
    let token = crate::helpers::issued_token(&identity_db, user, "shopper");
    let order = crate::helpers::order_body(user, "USD", "4432-8015-6152-0454");
    let items = format!("/api/cart/v1/carts/{user}/items");
    let item = json!({"product_id": "OLJCESPC7Z", "quantity": 1}).to_string();
    let add = || call_as(&base, Method::POST, &items, Some(&item), Some(&token));
    let place = || {
        client()
            .post(format!("{base}/api/checkout/v1/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(order.clone())
            .send()
    };

    // A first order opens checkout's pooled connection to payment.
    assert_eq!(add().await.status, 200);
    assert_eq!(read(place().await.expect("send")).await.status, 201);

    // The next answer payment sends (the second order's charge) is cut after a few bytes.
    assert_eq!(add().await.status, 200);
    proxy.set(Fault::CutNextAnswer);
    let second = read(place().await.expect("send")).await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(proxy.cut(), 1, "an answer was cut");
    let order_id = second.body["order_id"].as_str().expect("order id");

    // Payment was asked twice for this order's charge, and charged once.
    let charge_posts = payment
        .logged()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request completed" && v["path"] == "/api/payment/v1/charges")
        .count();
    assert_eq!(
        charge_posts, 3,
        "the first order's charge and the second's, twice"
    );
    let charges = crate::checkout_process::column(
        &sqlite_in(dir.path(), "payment.db"),
        &format!("SELECT status FROM payment_charges WHERE reference = '{order_id}'"),
    )
    .await;
    assert_eq!(charges, ["charged"]);
}

/// A small tmpfs mounted for one test (CI runs as root; elsewhere the test fails saying so),
/// unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills what is left with a file; its path, to free the space again.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // The last pages, a few bytes at a time.
        while file.write_all(&chunk[..512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_loses_no_acknowledged_write_and_writes_resume_when_space_is_back()
{
    let disk = SmallDisk::mount("6m");
    let db = sqlite_in(disk.path(), "shop.db");
    let env = [("CLEAVE_DATABASE__URL", db.clone())];
    let mut shop = Cleave::serve(&[], &env);
    let base = shop.base();
    let (user, token) = crate::helpers::guest(&base).await;
    let items = format!("/api/cart/v1/carts/{user}/items");
    let add = |product: &'static str| {
        let (base, items, token) = (base.clone(), items.clone(), token.clone());
        async move {
            let body = json!({"product_id": product, "quantity": 1}).to_string();
            call_as(&base, Method::POST, &items, Some(&body), Some(&token)).await
        }
    };
    let mut acknowledged = Vec::new();
    for product in ["OLJCESPC7Z", "66VCHSJNUP"] {
        assert_eq!(add(product).await.status, 200);
        acknowledged.push(product);
    }

    let filler = disk.fill();
    let mut refused = 0;
    for product in [
        "1YMWWN1N4O",
        "L9ECAV7KIM",
        "2ZYFJ3GM2N",
        "0PUK6V6EV0",
        "LS4PSXUNUM",
    ] {
        let answer = add(product).await;
        match answer.status.as_u16() {
            200 => acknowledged.push(product),
            _ => {
                answer.assert_problem(503, "cart.unavailable");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the full disk refused writes");

    std::fs::remove_file(filler).expect("free the space");
    for product in ["9SIQT8TOJO", "6E92ZMYYFZ"] {
        let answer = add(product).await;
        assert_eq!(
            answer.status, 200,
            "writes resume by themselves: {answer:?}"
        );
        acknowledged.push(product);
    }

    // A clean stop and a new process on the same file: every acknowledged write is there.
    shop.signal("TERM");
    assert!(shop.wait().success());
    let again = Cleave::serve(&[], &env);
    let cart = crate::helpers::cart_items(&again.base(), &user, &token).await;
    let mut have: Vec<&str> = cart
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["product_id"].as_str())
        .collect();
    have.sort_unstable();
    acknowledged.sort_unstable();
    assert_eq!(have, acknowledged);
}
