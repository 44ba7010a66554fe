//! The placement runner: one end-to-end body (the API script, checkout with its saga, the
//! confirmation e-mail delivered, who may call what, the storefront flow) run against the shop
//! split into OS processes in many ways, each answering as every module in one process does
//! (ids and times aside):
//! - each module alone in its own process, the others together in a second;
//! - one process per module (email alone too, its events over NATS JetStream);
//! - random placements drawn from a seed that every assertion message names
//!   (`TEST_PLACEMENTS=n` draws n instead of 2, `TEST_PLACEMENT_SEED=s` repeats a run);
//!   the first on PostgreSQL when `CLEAVE_TEST_DATABASE_URL` is set.
//!
//! Every process serves HTTPS with the deployment's server certificate and presents one
//! certificate naming the modules it hosts (`cleave certs issue --module a,b`), has its own
//! database, and reaches every module it does not host at the process that does.

use reqwest::Method;
use serde_json::{Value, json};

use cleave_kernel::testing::TestDb;

use crate::events::{delete_streams, nats_answers, unique_prefix};
use crate::helpers::{
    Answer, Pki, call_as, free_ports, guest, issued_token, order_body, script, sqlite_in,
};
use crate::process::Cleave;
use crate::storefront::{CHECKOUT_FORM, Shopper};

const GOOD_CARD: &str = "4432-8015-6152-0454";
const DECLINED_CARD: &str = "4432-8015-6152-0455";

/// Where the databases of a deployment live.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One process of a deployment: the modules it hosts and its environment.
pub(crate) type ProcessSpec = (Vec<&'static str>, Vec<(String, String)>);

/// The shop's modules split into OS processes.
pub(crate) struct Deployment {
    /// What the assertion messages call it (with the seed of a random placement).
    name: String,
    processes: Vec<(Vec<&'static str>, Cleave)>,
    identity_db: String,
    /// The NATS prefix of a deployment of several processes (its streams go at the end).
    prefix: Option<String>,
    _pki: Pki,
    _dir: tempfile::TempDir,
    _pg: Vec<TestDb>,
}

impl Deployment {
    async fn start(name: String, groups: Vec<Vec<&'static str>>, backend: Backend) -> Self {
        let hosted: Vec<&str> = groups.iter().flatten().copied().collect();
        let mut all = cleave::modules::names();
        all.sort_unstable();
        let mut sorted = hosted.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, all, "{name}: every module placed exactly once");

        let pki = Pki::shared_for(&groups);
        let dir = tempfile::tempdir().expect("dir");
        let ports = free_ports(groups.len());
        let prefix = (groups.len() > 1).then(unique_prefix);
        let mut pg = Vec::new();
        let mut dbs = Vec::new();
        for i in 0..groups.len() {
            dbs.push(match backend {
                Backend::Sqlite => sqlite_in(dir.path(), &format!("process-{i}.db")),
                Backend::Postgres => {
                    let url = std::env::var(cleave_kernel::testing::TEST_DATABASE_URL_ENV)
                        .expect("PostgreSQL url");
                    let db = TestDb::postgres(&url).await;
                    let url = db.url.clone();
                    pg.push(db);
                    url
                }
            });
        }
        let path = |f: &str| pki.path(f).display().to_string();
        let mut specs = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            let cert = group.join("+");
            let mut env = vec![
                (
                    "CLEAVE_SERVER__LISTEN".to_owned(),
                    format!("127.0.0.1:{}", ports[i]),
                ),
                ("CLEAVE_DATABASE__URL".to_owned(), dbs[i].clone()),
                (
                    "CLEAVE_SERVER__TLS__CERT_FILE".to_owned(),
                    path("server.pem"),
                ),
                (
                    "CLEAVE_SERVER__TLS__KEY_FILE".to_owned(),
                    path("server.key"),
                ),
                (
                    "CLEAVE_SERVER__TLS__CLIENT_CA_FILE".to_owned(),
                    path("ca.pem"),
                ),
                (
                    "CLEAVE_SERVER__TLS__CLIENT_CERT_REQUIRED".to_owned(),
                    "false".to_owned(),
                ),
                ("CLEAVE_REMOTE__CA_FILE".to_owned(), path("ca.pem")),
                (
                    "CLEAVE_REMOTE__CLIENT_CERT_FILE".to_owned(),
                    path(&format!("{cert}.pem")),
                ),
                (
                    "CLEAVE_REMOTE__CLIENT_KEY_FILE".to_owned(),
                    path(&format!("{cert}.key")),
                ),
            ];
            for (j, other) in groups.iter().enumerate() {
                if j == i {
                    continue;
                }
                for module in other {
                    env.push((
                        format!("CLEAVE_MODULES__{}__URL", module.to_uppercase()),
                        format!("https://127.0.0.1:{}", ports[j]),
                    ));
                }
            }
            if let Some(prefix) = &prefix {
                env.push(("CLEAVE_EVENTS__BUS".to_owned(), "nats".to_owned()));
                env.push(("CLEAVE_EVENTS__NATS_PREFIX".to_owned(), prefix.clone()));
            }
            specs.push((group.clone(), env));
        }
        let identity = groups
            .iter()
            .position(|g| g.contains(&"identity"))
            .expect("identity placed");
        let identity_db = dbs[identity].clone();
        Self::launch(name, specs, identity_db, prefix, pki, dir, pg)
    }

    /// Starts one process per spec (the modules it hosts, its environment).
    pub(crate) fn launch(
        name: String,
        specs: Vec<ProcessSpec>,
        identity_db: String,
        prefix: Option<String>,
        pki: Pki,
        dir: tempfile::TempDir,
        pg: Vec<TestDb>,
    ) -> Self {
        let mut processes = Vec::new();
        for (group, env) in specs {
            let env: Vec<(&str, String)> =
                env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let process = Cleave::serve(&["--modules", &group.join(",")], &env);
            processes.push((group, process));
        }
        Self {
            name,
            processes,
            identity_db,
            prefix,
            _pki: pki,
            _dir: dir,
            _pg: pg,
        }
    }

    fn hosting(&mut self, module: &str) -> &mut Cleave {
        &mut self
            .processes
            .iter_mut()
            .find(|(g, _)| g.contains(&module))
            .expect("every module is placed")
            .1
    }

    /// The shop's front door: the process hosting the storefront (it forwards every API
    /// route of a module it does not host).
    fn front(&mut self) -> String {
        self.hosting("storefront").https_base()
    }

    fn admin_token(&self) -> String {
        issued_token(&self.identity_db, "placement-admin", "admin")
    }

    /// Waits until the email process says it sent the confirmation of `order_id`.
    fn confirmation_sent(&mut self, order_id: &str) {
        self.hosting("email")
            .find_log(|v| v["message"] == "order confirmation sent" && v["order_id"] == order_id);
    }

    pub(crate) async fn stop(mut self) {
        for (_, process) in &mut self.processes {
            process.kill();
        }
        if let Some(prefix) = &self.prefix {
            delete_streams(prefix).await;
        }
    }
}

/// Ids and times that differ between runs, replaced by what they are (`<order 1>`), so that
/// answers of different placements compare equal while an id that turns up where another
/// belongs still shows.
#[derive(Default)]
struct Scrub {
    names: Vec<(String, String)>,
}

impl Scrub {
    fn name(&mut self, actual: &str, kind: &str) {
        if !actual.is_empty() && !self.names.iter().any(|(a, _)| a == actual) {
            let n = self
                .names
                .iter()
                .filter(|(_, p)| p.starts_with(kind))
                .count()
                + 1;
            self.names
                .push((actual.to_owned(), format!("<{kind} {n}>")));
        }
    }

    fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                let mut s = s.clone();
                for (actual, placeholder) in &self.names {
                    s = s.replace(actual, placeholder);
                }
                Value::String(s)
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if k == "created_at" || k == "sent_at" {
                            json!("<time>")
                        } else {
                            self.value(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn answer(&self, a: &Answer) -> Value {
        json!({"status": a.status.as_u16(), "type": a.content_type, "body": self.value(&a.body)})
    }
}

/// Places an order; the answer, and whether it is marked an idempotent replay.
async fn place(base: &str, token: &str, body: &str, key: &str) -> (Answer, bool) {
    let res = crate::helpers::client()
        .post(format!("{base}/api/checkout/v1/orders"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (crate::helpers::read(res).await, replayed)
}

/// The body every placement runs: labelled observations, scrubbed of ids and times.
pub(crate) async fn body(d: &mut Deployment) -> Vec<(String, Value)> {
    let front = d.front();
    let admin = d.admin_token();
    let mut seen: Vec<(String, Value)> = Vec::new();
    let mut scrub = Scrub::default();

    // The API script (catalog, currency, cart, recommendations; bad input).
    for (label, answer) in script(&front).await {
        seen.push((label, scrub.answer(&answer)));
    }

    // Checkout with its saga: an order in euros, its idempotent replay, a declined card that
    // charges nothing and keeps the cart.
    let (user, token) = guest(&front).await;
    let (other, other_token) = guest(&front).await;
    scrub.name(&user, "user");
    scrub.name(&other, "user");
    let call = |method: Method, path: String, body: Option<String>, token: Option<String>| {
        let front = front.clone();
        async move { call_as(&front, method, &path, body.as_deref(), token.as_deref()).await }
    };
    let cart = format!("/api/cart/v1/carts/{user}");
    for (product, quantity) in [("OLJCESPC7Z", 1), ("66VCHSJNUP", 2)] {
        let added = call(
            Method::POST,
            format!("{cart}/items"),
            Some(json!({"product_id": product, "quantity": quantity}).to_string()),
            Some(token.clone()),
        )
        .await;
        seen.push((format!("add {product}"), scrub.answer(&added)));
    }
    let order = order_body(&user, "EUR", GOOD_CARD);
    let (placed, first_marked) = place(&front, &token, &order, "placement-order-1").await;
    let order_id = placed.body["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (field, kind) in [
        ("order_id", "order"),
        ("shipping_tracking_id", "tracking"),
        ("transaction_id", "transaction"),
    ] {
        scrub.name(placed.body[field].as_str().unwrap_or_default(), kind);
    }
    seen.push(("place an order".into(), scrub.answer(&placed)));
    let (replay, replay_marked) = place(&front, &token, &order, "placement-order-1").await;
    seen.push(("the same order again".into(), scrub.answer(&replay)));
    seen.push((
        "marked a replay (first, again)".into(),
        json!([first_marked, replay_marked]),
    ));
    let orders = format!("/api/checkout/v1/orders/{order_id}");
    for (label, who) in [
        ("the order, to its owner", Some(token.clone())),
        ("the order, to another guest", Some(other_token.clone())),
        ("the order, to nobody", None),
    ] {
        let answer = call(Method::GET, orders.clone(), None, who).await;
        seen.push((label.into(), scrub.answer(&answer)));
    }
    let listed = format!("/api/checkout/v1/orders?user_id={user}");
    let mine = call(Method::GET, listed.clone(), None, Some(token.clone())).await;
    seen.push(("the owner's orders".into(), scrub.answer(&mine)));
    let emptied = call(Method::GET, cart.clone(), None, Some(token.clone())).await;
    seen.push(("the cart after the order".into(), scrub.answer(&emptied)));
    call(
        Method::POST,
        format!("{cart}/items"),
        Some(r#"{"product_id":"L9ECAV7KIM","quantity":1}"#.into()),
        Some(token.clone()),
    )
    .await;
    let (declined, _) = place(
        &front,
        &token,
        &order_body(&user, "USD", DECLINED_CARD),
        "placement-order-2",
    )
    .await;
    seen.push(("a declined card".into(), scrub.answer(&declined)));
    let kept = call(Method::GET, cart.clone(), None, Some(token.clone())).await;
    seen.push(("the cart after the decline".into(), scrub.answer(&kept)));

    // The confirmation e-mail, delivered once (wherever email runs).
    d.confirmation_sent(&order_id);
    let sent = call(
        Method::GET,
        format!("/api/email/v1/confirmations?order_id={order_id}"),
        None,
        Some(admin.clone()),
    )
    .await;
    scrub.name(
        sent.body[0]["message_id"].as_str().unwrap_or_default(),
        "message",
    );
    seen.push(("the confirmation".into(), scrub.answer(&sent)));

    // Who may call what, through the front door.
    for (label, method, path, who) in [
        (
            "another guest's cart",
            Method::GET,
            cart.clone(),
            Some(&other_token),
        ),
        ("a cart to nobody", Method::GET, cart.clone(), None),
        (
            "another guest's orders",
            Method::GET,
            listed.clone(),
            Some(&other_token),
        ),
        (
            "confirmations to a guest",
            Method::GET,
            "/api/email/v1/confirmations".to_owned(),
            Some(&token),
        ),
        (
            "a charge, to a guest",
            Method::GET,
            "/api/payment/v1/charges?reference=placement-order-1".to_owned(),
            Some(&token),
        ),
        (
            "the orders to an admin",
            Method::GET,
            listed.clone(),
            Some(&admin),
        ),
    ] {
        let answer = call(method, path, None, who.cloned()).await;
        seen.push((label.into(), scrub.answer(&answer)));
    }

    // The storefront, as a browser: browse, fill the cart, change currency, check out.
    let mut s = Shopper::at(front.clone());
    let home = s.get("/").await;
    seen.push((
        "home page".into(),
        json!([
            home.status.as_u16(),
            home.body
                .split("href=\"/product/")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            home.body.contains("$18.99")
        ]),
    ));
    let product = s.get("/product/OLJCESPC7Z").await;
    seen.push((
        "product page".into(),
        json!([
            product.status.as_u16(),
            product
                .body
                .contains("name=\"product_id\" value=\"OLJCESPC7Z\"")
        ]),
    ));
    let added = s
        .post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "2")])
        .await;
    let in_cart = s.get("/cart").await;
    let switched = s
        .post(
            "/setCurrency",
            &[("currency_code", "EUR"), ("return_to", "/cart")],
        )
        .await;
    let in_euros = s.get("/cart").await;
    seen.push((
        "cart pages".into(),
        json!([
            added.status.as_u16(),
            added.location,
            in_cart.status.as_u16(),
            in_cart.body.contains("$39.98"),
            switched.status.as_u16(),
            s.cookie("shop_currency"),
            in_euros.body.contains('€')
        ]),
    ));
    let done = s.post("/cart/checkout", &CHECKOUT_FORM).await;
    let session = s.cookie("shop_session-id").unwrap_or_default().to_owned();
    scrub.name(&session, "session");
    let theirs = call(
        Method::GET,
        format!("/api/checkout/v1/orders?user_id={session}"),
        None,
        Some(admin.clone()),
    )
    .await;
    let shop_order = theirs.body[0]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    seen.push((
        "checkout page".into(),
        json!([
            done.status.as_u16(),
            done.body.contains("Your order is complete!"),
            !shop_order.is_empty() && done.body.contains(&shop_order),
            theirs.status.as_u16(),
            theirs.body.as_array().map(Vec::len)
        ]),
    ));
    if !shop_order.is_empty() {
        d.confirmation_sent(&shop_order);
    }
    let sent = call(
        Method::GET,
        format!("/api/email/v1/confirmations?order_id={shop_order}"),
        None,
        Some(admin.clone()),
    )
    .await;
    seen.push((
        "the shop order's confirmation".into(),
        json!([sent.status.as_u16(), sent.body.as_array().map(Vec::len)]),
    ));
    let out = s.get("/logout").await;
    seen.push((
        "logout".into(),
        json!([out.status.as_u16(), s.cookie("shop_session-id")]),
    ));
    seen
}

/// Runs the body against `groups` and compares every observation with `expected`.
async fn check(
    name: String,
    groups: Vec<Vec<&'static str>>,
    backend: Backend,
    expected: &[(String, Value)],
) {
    let mut d =
        Deployment::start(format!("{name} [{backend:?}] {groups:?}"), groups, backend).await;
    let got = body(&mut d).await;
    let labels = |v: &[(String, Value)]| v.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&got), labels(expected), "{}", d.name);
    for ((label, want), (_, have)) in expected.iter().zip(&got) {
        assert_eq!(have, want, "{}: {label}", d.name);
    }
    d.stop().await;
}

/// What every module in one OS process answers (the in-process event bus, SQLite).
pub(crate) async fn one_process() -> Vec<(String, Value)> {
    let mut d = Deployment::start(
        "one process".into(),
        vec![cleave::modules::names()],
        Backend::Sqlite,
    )
    .await;
    let expected = body(&mut d).await;
    // The body's own expectations, checked once here (the placements then must match).
    let find = |label: &str| {
        expected
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {label}"))
    };
    assert_eq!(find("place an order")["status"], 201);
    assert_eq!(
        find("the same order again")["body"],
        find("place an order")["body"]
    );
    assert_eq!(find("marked a replay (first, again)"), json!([false, true]));
    assert_eq!(find("the order, to another guest")["status"], 404);
    assert_eq!(find("the order, to nobody")["status"], 401);
    assert_eq!(
        find("a declined card")["body"]["code"],
        "checkout.payment_declined"
    );
    assert_eq!(
        find("the confirmation")["body"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(find("another guest's cart")["status"], 403);
    assert_eq!(find("a cart to nobody")["status"], 401);
    assert_eq!(
        find("a charge, to a guest")["body"]["code"],
        "payment.forbidden"
    );
    assert_eq!(find("the orders to an admin")["status"], 200);
    assert_eq!(find("home page"), json!([200, 9, true]));
    assert_eq!(find("checkout page"), json!([200, true, true, 200, 1]));
    assert_eq!(find("the shop order's confirmation"), json!([200, 1]));
    d.stop().await;
    expected
}

#[tokio::test]
async fn each_module_alone_in_its_own_process_answers_like_one_process() {
    nats_answers();
    let expected = one_process().await;
    for module in cleave::modules::names() {
        let rest: Vec<&str> = cleave::modules::names()
            .into_iter()
            .filter(|m| *m != module)
            .collect();
        check(
            format!("{module} alone"),
            vec![vec![module], rest],
            Backend::Sqlite,
            &expected,
        )
        .await;
    }
}

#[tokio::test]
async fn one_process_per_module_answers_like_one_process() {
    nats_answers();
    let expected = one_process().await;
    let each: Vec<Vec<&str>> = cleave::modules::names()
        .into_iter()
        .map(|m| vec![m])
        .collect();
    check(
        "one process per module".into(),
        each,
        Backend::Sqlite,
        &expected,
    )
    .await;
}

/// splitmix64: a small generator, so a seed names one sequence of placements everywhere.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        usize::try_from(z % n as u64).expect("fits")
    }
}

/// Two to five processes, each module in one drawn at random.
fn random_placement(draw: &mut Draw) -> Vec<Vec<&'static str>> {
    let count = 2 + draw.below(4);
    let mut groups = vec![Vec::new(); count];
    for module in cleave::modules::names() {
        groups[draw.below(count)].push(module);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

#[tokio::test]
async fn random_placements_answer_like_one_process() {
    nats_answers();
    let seed = std::env::var("TEST_PLACEMENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map(|d| d.as_nanos() as u64).unwrap_or_default()
        });
    let count: usize = std::env::var("TEST_PLACEMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    eprintln!("random placements: TEST_PLACEMENT_SEED={seed} TEST_PLACEMENTS={count}");
    let postgres =
        std::env::var(cleave_kernel::testing::TEST_DATABASE_URL_ENV).is_ok_and(|u| !u.is_empty());
    let expected = one_process().await;
    let mut draw = Draw(seed);
    for i in 0..count {
        let groups = random_placement(&mut draw);
        let backend = if i == 0 && postgres {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        check(
            format!("TEST_PLACEMENT_SEED={seed} placement {}", i + 1),
            groups,
            backend,
            &expected,
        )
        .await;
    }
}
