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

use crate::helpers::{call_as, client, get, read, sqlite_in, succeeded};
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

/// Identity and cart, payment behind a [`FaultProxy`] (logging its requests), and checkout
/// with the rest calling them over HTTPS, each process with its own SQLite file; checkout
/// serves plain HTTP to the test.
struct ProxiedPayment {
    dir: tempfile::TempDir,
    _cart: Cleave,
    payment: Cleave,
    proxy: FaultProxy,
    _checkout: Cleave,
    base: String,
    token: String,
    /// A checkout request of the shopper's.
    order: String,
}

impl ProxiedPayment {
    const USER: &str = "proxied-shopper";

    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let pki = crate::helpers::Pki::made_by_cleave();
        let path = |f: &str| pki.path(f).display().to_string();
        let tls = |db: &str| crate::helpers::tls_env(&pki, &sqlite_in(dir.path(), db), None);
        let cart = Cleave::serve(&["--modules", "identity,cart"], &tls("identity.db"));
        let mut payment_env = tls("payment.db");
        payment_env.push(("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()));
        payment_env.push(("CLEAVE_LOG__ACCESS", "true".into()));
        let payment = Cleave::serve(&["--modules", "payment"], &payment_env);
        let proxy =
            FaultProxy::start(payment.https_base().trim_start_matches("https://").into()).await;
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
        let token = crate::helpers::issued_token(
            &sqlite_in(dir.path(), "identity.db"),
            Self::USER,
            "shopper",
        );
        Self {
            base: checkout.base(),
            order: crate::helpers::order_body(Self::USER, "USD", "4432-8015-6152-0454"),
            dir,
            _cart: cart,
            payment,
            proxy,
            _checkout: checkout,
            token,
        }
    }

    async fn add_to_cart(&self) {
        let items = format!("/api/cart/v1/carts/{}/items", Self::USER);
        let item = json!({"product_id": "OLJCESPC7Z", "quantity": 1}).to_string();
        let res = call_as(
            &self.base,
            Method::POST,
            &items,
            Some(&item),
            Some(&self.token),
        )
        .await;
        assert_eq!(res.status, 200, "{res:?}");
    }

    /// The shopper's checkout request, with `key` as its idempotency key.
    fn place(&self, key: &str) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}/api/checkout/v1/orders", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(self.order.clone())
    }

    /// The status of every charge payment made with `reference`.
    async fn charges(&self, reference: &str) -> Vec<String> {
        crate::checkout_process::column(
            &sqlite_in(self.dir.path(), "payment.db"),
            &format!("SELECT status FROM payment_charges WHERE reference = '{reference}'"),
        )
        .await
    }
}

#[tokio::test]
async fn a_charge_whose_answer_is_cut_is_sent_again_with_its_reference_and_charges_once() {
    let mut shop = ProxiedPayment::start().await;

    // A first order opens checkout's pooled connection to payment.
    shop.add_to_cart().await;
    assert_eq!(
        read(shop.place("cut-1").send().await.expect("send"))
            .await
            .status,
        201
    );

    // The next answer payment sends (the second order's charge) is cut after a few bytes.
    shop.add_to_cart().await;
    shop.proxy.set(Fault::CutNextAnswer);
    let second = read(shop.place("cut-2").send().await.expect("send")).await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(shop.proxy.cut(), 1, "an answer was cut");
    let order_id = second.body["order_id"].as_str().expect("order id");

    // Payment was asked twice for this order's charge, and charged once.
    let charge_posts = shop
        .payment
        .logged()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request completed" && v["path"] == "/api/payment/v1/charges")
        .count();
    assert_eq!(
        charge_posts, 3,
        "the first order's charge and the second's, twice"
    );
    assert_eq!(shop.charges(order_id).await, ["charged"]);
}

#[tokio::test]
async fn a_checkout_past_its_deadline_mid_charge_is_settled_at_once_not_left_to_recovery() {
    let shop = ProxiedPayment::start().await;
    shop.add_to_cart().await;

    // Payment's answers are slow; the shopper's deadline passes while the charge is under
    // way, and the edge answers 504 and drops the request.
    shop.proxy
        .set(Fault::Delay(std::time::Duration::from_secs(3)));
    let late = read(
        shop.place("late")
            .header("x-cleave-deadline-ms", "1000")
            .send()
            .await
            .expect("send"),
    )
    .await;
    late.assert_problem(504, "cleave.timeout");
    shop.proxy.set(Fault::Pass);

    // The saga did not stop with the request: its charge is undone and the attempt settled
    // within seconds, not at the next recovery pass (120 s), so the shopper's next try with
    // the same key places the order.
    let mut placed = None;
    for _ in 0..20 {
        let res = shop.place("late").send().await.expect("send");
        let retry_after: Option<u64> = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let answer = read(res).await;
        if answer.status == 201 {
            placed = Some(answer);
            break;
        }
        // Still being settled: 409 with Retry-After, as the contract says.
        answer.assert_problem(409, "checkout.request_in_progress");
        let wait = retry_after.expect("a 409 says when to come back");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    let placed = placed.expect("the late attempt was settled within 20 tries");
    let order_id = placed.body["order_id"].as_str().expect("order id");

    // One order, and its charge is the only one not refunded.
    let placed_orders = crate::checkout_process::column(
        &sqlite_in(shop.dir.path(), "checkout.db"),
        "SELECT order_id FROM checkout_orders WHERE status = 'placed'",
    )
    .await;
    assert_eq!(placed_orders, [order_id]);
    let charged = crate::checkout_process::column(
        &sqlite_in(shop.dir.path(), "payment.db"),
        "SELECT reference FROM payment_charges WHERE status = 'charged'",
    )
    .await;
    assert_eq!(charged, [order_id]);
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
    full_disk_drill(&disk, &db, || {}).await;
}

#[tokio::test]
async fn on_postgresql_a_full_disk_answers_503_loses_no_acknowledged_write_and_writes_resume() {
    let disk = SmallDisk::mount("96m");
    let pg = PrivatePostgres::start(&disk.path().join("pg"));
    full_disk_drill(&disk, &pg.url, || pg.restart()).await;
}

/// Writes (a new shopper's first cart line each) until the full disk refuses some, frees the
/// space, writes again; then stops the shop cleanly, runs `between` (restarting the database
/// server, for one), starts it again and reads every acknowledged write back.
async fn full_disk_drill(disk: &SmallDisk, db: &str, between: impl FnOnce()) {
    let env = [
        ("CLEAVE_DATABASE__URL", db.to_owned()),
        (
            "CLEAVE_MODULES__IDENTITY__GUESTS_PER_IP_PER_MINUTE",
            "1000000".to_owned(),
        ),
    ];
    let mut shop = Cleave::serve(&[], &env);
    let base = shop.base();
    let write = || {
        let base = base.clone();
        async move {
            let (user, token) = crate::helpers::guest(&base).await;
            let items = format!("/api/cart/v1/carts/{user}/items");
            let body = json!({"product_id": "OLJCESPC7Z", "quantity": 1}).to_string();
            let answer = call_as(&base, Method::POST, &items, Some(&body), Some(&token)).await;
            (answer, (user, token))
        }
    };
    let mut acknowledged = Vec::new();
    for _ in 0..2 {
        let (answer, shopper) = write().await;
        assert_eq!(answer.status, 200, "{answer:?}");
        acknowledged.push(shopper);
    }

    // The disk full: writes go on until the database has no room left (SQLite at once; a
    // server may first fill the pages it has), and are refused with 503 from then on.
    let filler = disk.fill();
    let mut refused = 0;
    for _ in 0..5000 {
        let (answer, shopper) = write().await;
        if answer.status == 200 {
            acknowledged.push(shopper);
        } else {
            answer.assert_problem(503, "cart.unavailable");
            refused += 1;
            if refused == 3 {
                break;
            }
        }
    }
    assert_eq!(refused, 3, "the full disk refused writes");

    std::fs::remove_file(filler).expect("free the space");
    for _ in 0..2 {
        let (answer, shopper) = write().await;
        assert_eq!(
            answer.status, 200,
            "writes resume by themselves: {answer:?}"
        );
        acknowledged.push(shopper);
    }

    // A clean stop and a new process on the same database: every acknowledged write is there.
    shop.signal("TERM");
    assert!(shop.wait().success());
    between();
    let again = Cleave::serve(&[], &env);
    for (user, token) in &acknowledged {
        let cart = crate::helpers::cart_items(&again.base(), user, token).await;
        assert_eq!(cart[0]["product_id"], "OLJCESPC7Z", "{user}: {cart}");
    }
}

/// A PostgreSQL server of this test's own (Debian's binaries, run as the `postgres` user),
/// its data in `dir`, on a free port; stopped when dropped.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    /// The url of its database `shop`.
    url: String,
    port: u16,
}

impl PrivatePostgres {
    fn start(dir: &std::path::Path) -> Self {
        let bin = Self::bin();
        std::fs::create_dir_all(dir).expect("data dir");
        succeeded(std::process::Command::new("chown").arg("postgres").arg(dir));
        let dir_arg = dir.display().to_string();
        succeeded(Self::as_postgres(&bin.join("initdb")).args([
            "-D",
            &dir_arg,
            "-U",
            "postgres",
            "--auth=trust",
            "--wal-segsize=1",
        ]));
        let port = crate::helpers::free_port();
        let pg = Self {
            dir: dir.to_owned(),
            url: format!("postgres://postgres@127.0.0.1:{port}/shop"),
            port,
        };
        pg.pg_ctl("start");
        succeeded(Self::as_postgres(&bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "shop",
        ]));
        pg
    }

    /// A clean stop and a start on the same data.
    fn restart(&self) {
        self.pg_ctl("stop");
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        succeeded(Self::as_postgres(&Self::bin().join("pg_ctl")).args([
            "-D",
            &self.dir.display().to_string(),
            "-w",
            "-m",
            "fast",
            "-l",
            &self.dir.join("server.log").display().to_string(),
            "-o",
            &options,
            action,
        ]));
    }

    /// Debian's PostgreSQL binaries (the newest installed version).
    fn bin() -> std::path::PathBuf {
        let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries in /usr/lib/postgresql (Debian's postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .collect();
        versions.sort();
        versions.pop().expect("a PostgreSQL version with pg_ctl")
    }

    fn as_postgres(program: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Self::as_postgres(&Self::bin().join("pg_ctl"))
            .args([
                "-D",
                &self.dir.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}
