//! Events across OS processes over NATS JetStream (the server this machine kind runs on
//! 127.0.0.1:4222, or the one `CLEAVE_EVENTS__NATS_URL` names, as in a CI service container;
//! `.ci/run` starts a local one when it is down): checkout in one process, email alone
//! in another; each confirmation arrives once, also when the email process is killed and
//! orders are placed while it is gone, and when the NATS server itself is killed (a server of
//! the test's own, on its own port and store) and started again.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{call_as, free_port, issued_token, sqlite_in};
use crate::process::Cleave;

/// The shared NATS server's address: `CLEAVE_EVENTS__NATS_URL` (which the processes the
/// tests start read too), else the machine's.
pub(crate) fn nats_addr() -> String {
    std::env::var("CLEAVE_EVENTS__NATS_URL")
        .ok()
        .map(|url| url.trim_start_matches("nats://").to_owned())
        .unwrap_or_else(|| "127.0.0.1:4222".to_owned())
}

/// Places an order for `user` (a product in the cart first), returns its id.
async fn order(base: &str, user: &str, token: &str) -> String {
    let added = call_as(
        base,
        Method::POST,
        &format!("/api/cart/v1/carts/{user}/items"),
        Some(r#"{"product_id":"OLJCESPC7Z","quantity":1}"#),
        Some(token),
    )
    .await;
    assert_eq!(added.status, 200, "{added:?}");
    let body = crate::helpers::order_body(user, "USD", "4432-8015-6152-0454");
    let placed = call_as(
        base,
        Method::POST,
        "/api/checkout/v1/orders",
        Some(&body),
        Some(token),
    )
    .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    placed.body["order_id"]
        .as_str()
        .expect("order id")
        .to_owned()
}

/// The confirmations the email process at `base` holds for `order_id`, read as an admin.
async fn confirmations(base: &str, admin: &str, order_id: &str) -> Vec<Value> {
    let path = format!("/api/email/v1/confirmations?order_id={order_id}");
    let answer = call_as(base, Method::GET, &path, None, Some(admin)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body.as_array().cloned().unwrap_or_default()
}

/// Fails loudly when the machine's NATS server does not answer.
pub(crate) fn nats_answers() {
    let nats = nats_addr();
    assert!(
        std::net::TcpStream::connect(&nats).is_ok(),
        "NATS is not answering on {nats}: start it with `nats-server -js` (.ci/run does)"
    );
}

/// A prefix of a test's own on the shared server: the streams and consumers of that run only.
pub(crate) fn unique_prefix() -> String {
    let id = cleave_kernel::CallContext::root()
        .request_id()
        .as_str()
        .replace('-', "");
    format!("t{}", &id[id.len() - 12..])
}

/// The settings of a process on database `db` with events over the machine's NATS server,
/// under `prefix`.
fn on_nats(db: String, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLEAVE_DATABASE__URL", db),
        ("CLEAVE_EVENTS__BUS", "nats".to_owned()),
        ("CLEAVE_EVENTS__NATS_PREFIX", prefix.to_owned()),
    ]
}

/// Deletes the streams of `prefix` (the server is shared by every run on this machine).
pub(crate) async fn delete_streams(prefix: &str) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_addr()).await.expect("connect"));
    for stream in ["EVENTS", "DEAD_LETTERS"] {
        let _ = js
            .delete_stream(format!("{}_{stream}", prefix.to_uppercase()))
            .await;
    }
}

#[tokio::test]
async fn orders_placed_in_one_process_are_confirmed_once_by_email_in_another_over_nats() {
    nats_answers();
    let dir = tempfile::tempdir().expect("dir");
    let prefix = unique_prefix();
    let bus = |db: String| on_nats(db, &prefix);
    let shop_db = sqlite_in(dir.path(), "shop.db");
    let shop = Cleave::serve(
        &[
            "--modules",
            "identity,catalog,currency,cart,shipping,payment,checkout",
        ],
        &bus(shop_db.clone()),
    );
    let email_env = || {
        let mut env = bus(sqlite_in(dir.path(), "email.db"));
        env.push(("CLEAVE_MODULES__IDENTITY__URL", shop.base()));
        env
    };
    let mut email = Cleave::serve(&["--modules", "email"], &email_env());
    let (user, admin) = ("nats-shopper", issued_token(&shop_db, "ops", "admin"));
    let shopper = issued_token(&shop_db, user, "shopper");

    let first = order(&shop.base(), user, &shopper).await;
    let sent = email.wait_for_log(|v| {
        v["message"] == "order confirmation sent" && v["order_id"] == first.as_str()
    });
    // The line shows the span it was logged in: the delivery of the event.
    assert_eq!(sent["span"]["topic"], "checkout.order_placed", "{sent}");
    assert_eq!(
        sent["spans"][0]["subscriber"], "email.order_confirmation",
        "{sent}"
    );
    assert_eq!(confirmations(&email.base(), &admin, &first).await.len(), 1);

    // Email dies; orders go on; a new email process gets each pending confirmation once,
    // and the one already handled is not handled again.
    email.kill();
    let mut placed = Vec::new();
    for _ in 0..3 {
        placed.push(order(&shop.base(), user, &shopper).await);
    }
    let mut email = Cleave::serve(&["--modules", "email"], &email_env());
    for order_id in &placed {
        email.find_log(|v| {
            v["message"] == "order confirmation sent" && v["order_id"] == order_id.as_str()
        });
    }
    for order_id in placed.iter().chain([&first]) {
        let sent = confirmations(&email.base(), &admin, order_id).await;
        assert_eq!(sent.len(), 1, "{order_id}: {sent:?}");
        assert!(
            sent[0]["body"]
                .as_str()
                .is_some_and(|b| b.contains(order_id.as_str())),
            "{sent:?}"
        );
    }
    let sends = email
        .logged()
        .iter()
        .filter(|l| l.contains("\"order confirmation sent\""))
        .count();
    assert_eq!(sends, placed.len(), "each pending order confirmed once");

    // An operator sees nothing waiting: no pending event, no dead letter.
    let events = |args: &[&str]| {
        let out = crate::helpers::succeeded(
            std::process::Command::new(env!("CARGO_BIN_EXE_cleave"))
                .arg("events")
                .args(args)
                .env("CLEAVE_DATABASE__URL", &shop_db)
                .env("CLEAVE_EVENTS__BUS", "nats")
                .env("CLEAVE_EVENTS__NATS_PREFIX", &prefix),
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(events(&["pending"]).contains("0 pending"));
    assert!(events(&["dead-letters"]).contains("0 dead letters"));

    delete_streams(&prefix).await;
}

#[tokio::test]
async fn with_the_broker_down_a_process_starts_serves_and_says_so_without_turning_unready() {
    // Nothing listens on port 9.
    let app = crate::helpers::TestApp::start(
        Some(std::sync::Arc::new(cleave_kernel::testing::TestDb::sqlite())),
        &[
            ("events.bus", json!("nats")),
            ("events.nats_url", json!("nats://127.0.0.1:9")),
        ],
    )
    .await;
    let ready = crate::helpers::get(&app.url(""), "/health/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(
        ready.body["checks"]["events:nats"]
            .as_str()
            .is_some_and(|c| c.starts_with("degraded: not connected")),
        "{ready:?}"
    );
    assert_eq!(ready.body["checks"]["database"], "ok");
    let products = crate::helpers::get(&app.url(""), "/api/catalog/v1/products").await;
    assert_eq!(products.status, 200);
    app.stop().await;
}

/// A NATS server of one test (Debian's `nats-server -js`) on `port`, storing in `dir`.
struct NatsServer {
    child: std::process::Child,
}

impl NatsServer {
    /// Starts it and returns once it says it is ready.
    fn start(dir: &std::path::Path, port: u16) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nats-server (Debian's nats-server; scripts/nats.sh installs it)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("nats-server did not get ready:\n{}", seen.join("\n")));
            if line.contains("Server is ready") {
                break;
            }
            seen.push(line);
        }
        Self { child }
    }

    /// kill -9.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn with_the_nats_server_killed_between_orders_every_confirmation_arrives_once() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("nats");
    let port = free_port();
    let mut nats = NatsServer::start(&store, port);
    let bus = |db: String| {
        vec![
            ("CLEAVE_DATABASE__URL", db),
            ("CLEAVE_EVENTS__BUS", "nats".to_owned()),
            (
                "CLEAVE_EVENTS__NATS_URL",
                format!("nats://127.0.0.1:{port}"),
            ),
        ]
    };
    let shop_db = sqlite_in(dir.path(), "shop.db");
    let shop = Cleave::serve(
        &[
            "--modules",
            "identity,catalog,currency,cart,shipping,payment,checkout",
        ],
        &bus(shop_db.clone()),
    );
    let mut env = bus(sqlite_in(dir.path(), "email.db"));
    env.push(("CLEAVE_MODULES__IDENTITY__URL", shop.base()));
    let mut email = Cleave::serve(&["--modules", "email"], &env);
    let (user, admin) = ("nats-down-shopper", issued_token(&shop_db, "ops", "admin"));
    let shopper = issued_token(&shop_db, user, "shopper");

    // Three orders with the broker up, three while it is gone (kill -9: what it had stored
    // stays on disk; what it had not, waits in the outbox), three after it is back.
    let mut placed = Vec::new();
    for i in 0..9 {
        if i == 3 {
            nats.kill();
        }
        if i == 6 {
            // The three placed while it was gone wait in the shop's outbox.
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_cleave"))
                .args(["events", "pending"])
                .env("CLEAVE_DATABASE__URL", &shop_db)
                .output()
                .expect("cleave events pending");
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            let pending: usize = said
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no count in {said:?}"));
            assert!(pending >= 3, "{said}");
            nats = NatsServer::start(&store, port);
        }
        placed.push(order(&shop.base(), user, &shopper).await);
    }
    for order_id in &placed {
        email.find_log(|v| {
            v["message"] == "order confirmation sent" && v["order_id"] == order_id.as_str()
        });
    }
    for order_id in &placed {
        let sent = confirmations(&email.base(), &admin, order_id).await;
        assert_eq!(sent.len(), 1, "{order_id}: {sent:?}");
    }
    let sends = email
        .logged()
        .iter()
        .filter(|l| l.contains("\"order confirmation sent\""))
        .count();
    assert_eq!(sends, placed.len(), "each order confirmed once");
    drop(nats);
}

#[tokio::test]
async fn another_process_remembers_who_is_active_and_refuses_a_deleted_users_token_when_told() {
    nats_answers();
    let dir = tempfile::tempdir().expect("dir");
    let prefix = unique_prefix();
    let bus = |db: String| on_nats(db, &prefix);
    let identity_db = sqlite_in(dir.path(), "identity.db");
    let mut env = bus(identity_db.clone());
    // Every request logged: the questions identity is asked are counted.
    env.push(("CLEAVE_LOG__ACCESS", "true".to_owned()));
    let mut identity = Cleave::serve(&["--modules", "identity"], &env);
    let mut env = bus(sqlite_in(dir.path(), "cart.db"));
    env.push(("CLEAVE_MODULES__IDENTITY__URL", identity.base()));
    let mut cart = Cleave::serve(&["--modules", "cart"], &env);

    let created = crate::identity::admin(
        &["user", "create", "--email", "leaving@example.com"],
        &identity_db,
        "a long enough passphrase\n",
    );
    let user = created
        .split_whitespace()
        .nth(2)
        .expect("created user <id> ...")
        .to_owned();
    let token = issued_token(&identity_db, &user, "shopper");
    let admin = issued_token(&identity_db, "ops", "admin");
    let carts = format!("/api/cart/v1/carts/{user}");
    for _ in 0..5 {
        let answer = call_as(&cart.base(), Method::GET, &carts, None, Some(&token)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    // Every request the cart process made to identity was logged before the cart process
    // answered; a request sent after them is logged after them.
    let sentinel = "/after-the-five-cart-calls";
    crate::helpers::call(&identity.base(), Method::GET, sentinel, None).await;
    identity.wait_for_log(|v| v["path"] == sentinel);
    let asked = identity
        .logged()
        .iter()
        .filter(|l| l.contains(&format!("/api/identity/v1/users/{user}/active")))
        .count();
    assert_eq!(asked, 1, "five token checks, one question to identity");

    let deleted = call_as(
        &identity.base(),
        Method::DELETE,
        &format!("/api/identity/v1/users/{user}"),
        None,
        Some(&admin),
    )
    .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let since = std::time::Instant::now();
    cart.wait_for_log(|v| {
        v["message"] == "user deleted: their tokens are refused here from now on"
            && v["user_id"] == user.as_str()
    });
    // A measurement for the notes, not an assertion.
    eprintln!(
        "UserDeleted reached the cart process {} ms after the deletion answered",
        since.elapsed().as_millis()
    );
    call_as(&cart.base(), Method::GET, &carts, None, Some(&token))
        .await
        .assert_problem(401, "auth.unauthenticated");
    delete_streams(&prefix).await;
}

#[tokio::test]
async fn a_product_or_an_ad_changed_through_one_replica_is_served_by_the_other_at_once() {
    nats_answers();
    let dir = tempfile::tempdir().expect("dir");
    let prefix = unique_prefix();
    // Two replicas of catalog and ads on one database, no periodic reload: only the events
    // can tell the second of a change made through the first.
    let db = sqlite_in(dir.path(), "shop.db");
    let mut env = on_nats(db.clone(), &prefix);
    env.push(("CLEAVE_MODULES__CATALOG__REFRESH_SECS", "0".to_owned()));
    let first = Cleave::serve(&["--modules", "identity,catalog,ads"], &env);
    env.push(("CLEAVE_MODULES__IDENTITY__URL", first.base()));
    let mut second = Cleave::serve(&["--modules", "catalog,ads"], &env);
    let admin = issued_token(&db, "ops", "admin");
    let reloaded = |topic: &'static str| {
        move |v: &Value| v["message"] == "reloaded after a change" && v["topic"] == topic
    };
    let kettle = "/api/catalog/v1/products/KETTLE0001";
    let put = |path: &'static str, body: Value| {
        let (base, admin) = (first.base(), admin.clone());
        async move {
            let body = body.to_string();
            call_as(&base, Method::PUT, path, Some(&body), Some(&admin)).await
        }
    };

    let saved = put(
        kettle,
        json!({"id": "KETTLE0001", "name": "Kettle", "description": "Boils water.",
               "picture": "/static/img/products/kettle.jpg",
               "price_usd": {"currency_code": "USD", "units": 24, "nanos": 0},
               "categories": ["kitchen"]}),
    )
    .await;
    assert_eq!(saved.status, 200, "{saved:?}");
    second.wait_for_log(reloaded("catalog.product_changed"));
    let served = call_as(&second.base(), Method::GET, kettle, None, None).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.body["name"], "Kettle");

    let ad = put(
        "/api/ads/v1/ads/kettle",
        json!({"category": "Kettles", "redirect_url": "/product/KETTLE0001",
               "text": "Kettle for sale."}),
    )
    .await;
    assert_eq!(ad.status, 200, "{ad:?}");
    second.wait_for_log(reloaded("ads.ad_changed"));
    let ads = crate::helpers::get(&second.base(), "/api/ads/v1/ads?context_keys=kettles").await;
    assert_eq!(
        ads.body["ads"],
        json!([{"redirect_url": "/product/KETTLE0001", "text": "Kettle for sale."}]),
        "{ads:?}"
    );

    let removed = call_as(&first.base(), Method::DELETE, kettle, None, Some(&admin)).await;
    assert_eq!(removed.status, 204, "{removed:?}");
    second.wait_for_log(reloaded("catalog.product_changed"));
    call_as(&second.base(), Method::GET, kettle, None, None)
        .await
        .assert_problem(404, "catalog.product_not_found");
    delete_streams(&prefix).await;
}

/// A caller keeps the catalog's answers (its reads are `cached`): with the catalog stopped
/// it still answers from them; once the catalog publishes a change over NATS it drops them
/// and asks again. The kept answers live a minute here, so only the event can drop them.
#[tokio::test]
async fn a_caller_answers_from_kept_catalog_answers_until_the_catalog_publishes_a_change() {
    nats_answers();
    let dir = tempfile::tempdir().expect("dir");
    let prefix = unique_prefix();
    let catalog_db = sqlite_in(dir.path(), "catalog.db");
    let catalog = Cleave::serve(
        &["--modules", "identity,catalog"],
        &on_nats(catalog_db.clone(), &prefix),
    );
    let mut env = on_nats(sqlite_in(dir.path(), "main.db"), &prefix);
    env.extend([
        ("CLEAVE_MODULES__IDENTITY__URL", catalog.base()),
        ("CLEAVE_MODULES__CATALOG__URL", catalog.base()),
        ("CLEAVE_REMOTE__CACHE_TTL_MS", "60000".to_owned()),
    ]);
    let mut main = Cleave::serve(&["--modules", "currency,cart,recommendation"], &env);
    let recommend = "/api/recommendation/v1/recommendations?user_id=u&product_ids=";
    // One second to answer: a call that must reach the stopped catalog fails within it.
    let base = main.base();
    let ask = || {
        let base = base.clone();
        async move {
            let res = crate::helpers::client()
                .get(format!("{base}{recommend}"))
                .header("x-cleave-deadline-ms", "1000")
                .send()
                .await
                .expect("an answer");
            res.status().as_u16()
        }
    };
    assert_eq!(ask().await, 200, "asked the catalog, kept its answer");

    catalog.signal("STOP");
    assert_eq!(ask().await, 200, "answered from the kept answer");
    catalog.signal("CONT");

    let admin = issued_token(&catalog_db, "ops", "admin");
    let body = json!({"id": "KETTLE0001", "name": "Kettle", "description": "Boils water.",
                      "picture": "/static/img/products/kettle.jpg",
                      "price_usd": {"currency_code": "USD", "units": 24, "nanos": 0},
                      "categories": ["kitchen"]})
    .to_string();
    let saved = call_as(
        &catalog.base(),
        Method::PUT,
        "/api/catalog/v1/products/KETTLE0001",
        Some(&body),
        Some(&admin),
    )
    .await;
    assert_eq!(saved.status, 200, "{saved:?}");
    main.wait_for_log(|v| {
        v["message"] == "its data changed: kept answers dropped"
            && v["module"] == "catalog"
            && v["topic"] == "catalog.product_changed"
    });

    catalog.signal("STOP");
    let status = ask().await;
    catalog.signal("CONT");
    assert!(
        matches!(status, 503 | 504),
        "the kept answers are gone: the call needs the stopped catalog ({status})"
    );
    assert_eq!(ask().await, 200, "the catalog answers again");
    delete_streams(&prefix).await;
}

/// The number in the storefront header's cart count.
fn header_count(page: &str) -> i64 {
    let marker = "class=\"cart-count\">";
    let at = page.find(marker).expect("the header's cart count") + marker.len();
    page[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a count")
}

/// The storefront's header counts the cart from an answer kept for the shopper
/// (`kept_answer_will_do`): with the cart process stopped the page still shows it, also after
/// another shopper's cart changed; a change made elsewhere (the cart emptied at the cart's own
/// process by an admin) shows once the cart's `cart.changed` has arrived over NATS. Kept
/// answers live a minute here, so only the event can drop this one.
#[tokio::test]
async fn the_storefronts_cart_count_follows_a_change_made_elsewhere_once_the_cart_announces_it() {
    cart_count_follows_changes(false).await;
}

/// The same with the storefront calling cart over gRPC: kept answers there are keyed by the
/// resource the call names, so another shopper's change leaves this one's.
#[tokio::test]
async fn over_grpc_the_storefronts_cart_count_is_dropped_by_its_own_carts_changes_only() {
    cart_count_follows_changes(true).await;
}

async fn cart_count_follows_changes(grpc: bool) {
    use crate::storefront::Shopper;
    nats_answers();
    let dir = tempfile::tempdir().expect("dir");
    let prefix = unique_prefix();
    // The front calls operations reserved to the deployment's modules: HTTPS and module
    // certificates, as a split deployment has them.
    let front_modules: Vec<&str> = cleave::modules::names()
        .into_iter()
        .filter(|m| !["identity", "cart"].contains(m))
        .collect();
    let pki = crate::helpers::Pki::shared_for(&[vec!["identity", "cart"], front_modules.clone()]);
    let env_of = |db: String, group: &str| {
        let mut env = on_nats(db, &prefix);
        env.extend(
            crate::helpers::tls_env(&pki, "", None)
                .into_iter()
                .filter(|(k, _)| *k != "CLEAVE_DATABASE__URL"),
        );
        let file = |ext: &str| pki.path(&format!("{group}.{ext}")).display().to_string();
        env.push(("CLEAVE_REMOTE__CLIENT_CERT_FILE", file("pem")));
        env.push(("CLEAVE_REMOTE__CLIENT_KEY_FILE", file("key")));
        env
    };
    let cart_db = sqlite_in(dir.path(), "cart.db");
    let grpc_port = crate::helpers::free_port();
    let mut env = env_of(cart_db.clone(), "identity+cart");
    if grpc {
        env.push((
            "CLEAVE_SERVER__GRPC_LISTEN",
            format!("127.0.0.1:{grpc_port}"),
        ));
    }
    let cart = Cleave::serve(&["--modules", "identity,cart"], &env);
    let cart_url = if grpc {
        format!("grpcs://127.0.0.1:{grpc_port}")
    } else {
        cart.https_base()
    };
    let mut env = env_of(sqlite_in(dir.path(), "front.db"), &front_modules.join("+"));
    env.extend([
        ("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()),
        ("CLEAVE_MODULES__CART__URL", cart_url),
        ("CLEAVE_REMOTE__CACHE_TTL_MS", "60000".to_owned()),
        // The drop of one resource's kept answers is logged at debug.
        ("CLEAVE_LOG__LEVEL", "debug".to_owned()),
    ]);
    let mut front = Cleave::serve(&["--modules", &front_modules.join(",")], &env);
    let cart_dropped = |v: &serde_json::Value| {
        v["message"] == "a resource changed: the answers kept about it dropped"
            && v["module"] == "cart"
            && v["topic"] == "cart.changed"
    };
    // The event of a change made through this process drops only what was kept before its
    // answer came, unless the event arrived first (then it is dropped as any other).
    let own_or_any_dropped = |v: &serde_json::Value| {
        cart_dropped(v)
            || (v["message"]
                == "a resource changed through this process: the answers kept before it dropped"
                && v["module"] == "cart")
    };
    // A new shopper (a session from the home page) adds a product through the form.
    let front_base = front.https_base();
    let shopper_adding = |product: &'static str, quantity: &'static str| {
        let base = front_base.clone();
        async move {
            let mut shopper = Shopper::at(base);
            assert_eq!(shopper.get("/").await.status, 200);
            let added = shopper
                .post("/cart", &[("product_id", product), ("quantity", quantity)])
                .await;
            assert!(added.status.is_redirection(), "{}", added.status);
            shopper
        }
    };
    let mut shopper = shopper_adding("OLJCESPC7Z", "2").await;
    // The cart announces the change this very process made (it dropped the answer already).
    front.wait_for_log(own_or_any_dropped);
    assert_eq!(
        header_count(&shopper.get("/").await.body),
        2,
        "a change made through the storefront shows at once"
    );
    // Another shopper's cart changes: its event names that cart only.
    shopper_adding("66VCHSJNUP", "1").await;
    front.wait_for_log(own_or_any_dropped);

    cart.signal("STOP");
    let page = shopper.get("/").await;
    cart.signal("CONT");
    assert_eq!(page.status, 200);
    assert_eq!(header_count(&page.body), 2, "counted from the kept answer");

    let admin = issued_token(&cart_db, "ops", "admin");
    let session = shopper
        .cookie(storefront::SESSION_COOKIE)
        .expect("a session")
        .to_owned();
    let emptied = call_as(
        &cart.https_base(),
        Method::DELETE,
        &format!("/api/cart/v1/carts/{session}"),
        None,
        Some(&admin),
    )
    .await;
    assert_eq!(emptied.status, 204, "{emptied:?}");
    front.wait_for_log(cart_dropped);
    assert_eq!(
        header_count(&shopper.get("/").await.body),
        0,
        "the kept answer went with the cart's event"
    );
    delete_streams(&prefix).await;
}
