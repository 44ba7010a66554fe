//! Checkout across real OS processes: cart, payment and checkout each in its own process
//! (with its own database), idempotent retries over the wire, a declined card, a payment
//! process that dies; and the outbox: an `OrderPlaced` committed by a process that is killed
//! before delivering it arrives after a restart.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    Answer, Pki, call_as, client, free_port, get, issued_token, order_body, read, sqlite_in,
    tls_env,
};
use crate::process::Cleave;

/// The settings of the checkout process: its database, identity, cart and payment over HTTPS
/// with checkout's module certificate.
fn checkout_env(
    pki: &Pki,
    db: &str,
    identity_and_cart: &str,
    payment: &str,
) -> Vec<(&'static str, String)> {
    let path = |f: &str| pki.path(f).display().to_string();
    vec![
        ("CLEAVE_DATABASE__URL", db.to_owned()),
        (
            "CLEAVE_MODULES__IDENTITY__URL",
            identity_and_cart.to_owned(),
        ),
        ("CLEAVE_MODULES__CART__URL", identity_and_cart.to_owned()),
        ("CLEAVE_MODULES__PAYMENT__URL", payment.to_owned()),
        ("CLEAVE_REMOTE__CA_FILE", path("ca.pem")),
        ("CLEAVE_REMOTE__CLIENT_CERT_FILE", path("checkout.pem")),
        ("CLEAVE_REMOTE__CLIENT_KEY_FILE", path("checkout.key")),
    ]
}

const GOOD_CARD: &str = "4432-8015-6152-0454";

async fn place(base: &str, token: &str, body: &str, key: Option<&str>) -> Answer {
    let mut req = client()
        .post(format!("{base}/api/checkout/v1/orders"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    read(req.send().await.expect("send")).await
}

async fn add(base: &str, token: &str, user: &str, product: &str, quantity: i64) {
    let res = call_as(
        base,
        Method::POST,
        &format!("/api/cart/v1/carts/{user}/items"),
        Some(&json!({"product_id": product, "quantity": quantity}).to_string()),
        Some(token),
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
}

/// Rows in `payment_charges` of the payment process's database.
async fn charges(url: &str) -> i64 {
    let db = cleave_kernel::db::connect(url, 1)
        .await
        .expect("open payment db");
    cleave_kernel::testing::count(&db, "SELECT COUNT(*) AS n FROM payment_charges").await
}

#[tokio::test]
async fn checkout_payment_and_cart_in_three_processes_place_one_order_per_key() {
    let dir = tempfile::tempdir().expect("dir");
    // The deployment's certificates, as an operator makes them.
    let pki = Pki::made_by_cleave();
    let payment_db = sqlite_in(dir.path(), "payment.db");
    let identity_db = sqlite_in(dir.path(), "identity.db");
    // Debug logs everywhere: no level may show a card number.
    let debug = || ("CLEAVE_LOG__LEVEL", "debug".to_owned());
    // Identity and cart: HTTPS, telling checkout's certificate apart.
    let mut env = tls_env(&pki, &identity_db, None);
    env.push(debug());
    let cart = Cleave::serve(&["--modules", "identity,cart"], &env);
    // Payment answers the checkout module (its certificate) and admins only.
    let mut env = tls_env(&pki, &payment_db, Some(&cart.https_base()));
    env.push(debug());
    let mut payment = Cleave::serve(&["--modules", "payment"], &env);
    let mut env = checkout_env(
        &pki,
        &sqlite_in(dir.path(), "checkout.db"),
        &cart.https_base(),
        &payment.https_base(),
    );
    env.push(debug());
    let mut checkout = Cleave::serve(
        &["--modules", "catalog,currency,shipping,email,checkout"],
        &env,
    );
    let base = checkout.base();
    let user = "three-process-shopper";
    // The shopper's token (an operator issues one for this id) and an admin's.
    let token = issued_token(&identity_db, user, "shopper");
    let admin = issued_token(&identity_db, "ops", "admin");
    // The cart is reached through the checkout process (forwarded to the cart process).
    add(&base, &token, user, "OLJCESPC7Z", 2).await;
    add(&base, &token, user, "6E92ZMYYFZ", 1).await;

    let body = order_body(user, "EUR", GOOD_CARD);
    place(&base, &admin.replace('.', "x"), &body, None)
        .await
        .assert_problem(401, "auth.unauthenticated");
    let stranger = issued_token(&identity_db, "someone-else", "shopper");
    place(&base, &stranger, &body, None)
        .await
        .assert_problem(403, "checkout.forbidden");
    let first = place(&base, &token, &body, Some("three-1")).await;
    assert_eq!(first.status, 201, "{first:?}");
    let order = first.body.clone();
    assert_eq!(order["status"], "placed");
    assert_eq!(order["total"]["currency_code"], "EUR");
    assert_eq!(order["items"].as_array().map(Vec::len), Some(2));
    let order_id = order["order_id"].as_str().expect("order id").to_owned();

    // The charge lives in the payment process, under the order's id; only admins and
    // checkout (its certificate) read it.
    let charge_url = format!(
        "{}/api/payment/v1/charges?reference={order_id}",
        payment.https_base()
    );
    let read_charge = |cert: Option<&'static str>, token: Option<&str>| {
        let mut req = pki.client_as(cert).get(&charge_url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { read(req.send().await.expect("send")).await }
    };
    read_charge(None, None)
        .await
        .assert_problem(401, "payment.unauthenticated");
    read_charge(Some("ads"), None)
        .await
        .assert_problem(403, "payment.forbidden");
    let charge = read_charge(None, Some(&admin)).await;
    assert_eq!(charge.status, 200, "{charge:?}");
    assert_eq!(charge.body["status"], "charged");
    assert_eq!(charge.body["amount"], order["total"]);
    // The cart process emptied the cart.
    let cart_url = format!("{}/api/cart/v1/carts/{user}", cart.https_base());
    let cart_client = pki.client_as(None);
    let cart_of = |token: String| {
        let url = cart_url.clone();
        let client = cart_client.clone();
        async move {
            read(
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    let emptied = cart_of(token.clone()).await;
    assert_eq!(emptied.body["items"], json!([]));
    // The confirmation went out (through the outbox, after the commit).
    let sent = checkout.wait_for_log(|v| {
        v["message"] == "order confirmation sent" && v["order_id"] == order_id.as_str()
    });
    assert_eq!(sent["level"], "INFO");
    let confirmations_path = format!("/api/email/v1/confirmations?order_id={order_id}");
    get(&base, &confirmations_path)
        .await
        .assert_problem(401, "email.unauthenticated");
    let confirmations = call_as(&base, Method::GET, &confirmations_path, None, Some(&admin)).await;
    assert_eq!(confirmations.body.as_array().map(Vec::len), Some(1));

    // A retry with the same key returns the first order and charges nothing more.
    let charged = charges(&payment_db).await;
    let retry = place(&base, &token, &body, Some("three-1")).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, order, "same key, same order");
    assert_eq!(charges(&payment_db).await, charged, "no second charge");
    // The same key with another request is refused.
    let usd = order_body(user, "USD", GOOD_CARD);
    place(&base, &token, &usd, Some("three-1"))
        .await
        .assert_problem(422, "checkout.idempotency_key_reused");
    // Order history needs the owner's token.
    let orders = |base: String| {
        let token = token.clone();
        async move {
            let res = client()
                .get(format!("{base}/api/checkout/v1/orders?user_id={user}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("send");
            read(res).await
        }
    };
    get(&base, &format!("/api/checkout/v1/orders?user_id={user}"))
        .await
        .assert_problem(401, "checkout.unauthenticated");
    let listed = orders(base.clone()).await;
    assert_eq!(listed.body, json!([order]));

    // A declined card: 402, no charge, no order, the cart kept.
    add(&base, &token, user, "L9ECAV7KIM", 1).await;
    place(
        &base,
        &token,
        &order_body(user, "USD", "4432-8015-6152-0455"),
        None,
    )
    .await
    .assert_problem(402, "checkout.payment_declined");
    assert_eq!(
        charges(&payment_db).await,
        charged,
        "a decline charges nothing"
    );
    let kept = cart_of(token.clone()).await;
    assert_eq!(kept.body["items"].as_array().map(Vec::len), Some(1));

    // No log line of any process, at debug level, holds a full card number or a CVV field.
    let mut lines = checkout.logged();
    lines.extend(payment.logged());
    let mut cart = cart;
    lines.extend(cart.logged());
    assert!(lines.len() > 10, "the processes logged: {}", lines.len());
    for line in &lines {
        for secret in [
            "4432801561520454",
            "4432-8015-6152-0454",
            "4432-8015-6152-0455",
            "\"cvv\"",
        ] {
            assert!(!line.contains(secret), "a log line shows card data: {line}");
        }
    }

    // Payment dies: checkout answers 503, places nothing, keeps the cart.
    payment.kill();
    place(&base, &token, &usd, Some("three-2"))
        .await
        .assert_problem(503, "checkout.unavailable");
    let listed = orders(base.clone()).await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(1),
        "still one order"
    );
    let kept = cart_of(token.clone()).await;
    assert_eq!(kept.body["items"].as_array().map(Vec::len), Some(1));

    // Checkout cannot tell whether the charge was made (payment did not answer), so the
    // attempt stays open until payment can say (recovery): the key is busy meanwhile, and
    // nothing is charged twice.
    place(&base, &token, &usd, Some("three-2"))
        .await
        .assert_problem(409, "checkout.request_in_progress");

    // Payment comes back (on a new port, so checkout restarts with the new url): the shopper
    // can buy, with a new key.
    let payment = Cleave::serve(
        &["--modules", "payment"],
        &tls_env(&pki, &payment_db, Some(&cart.https_base())),
    );
    drop(checkout);
    let checkout = Cleave::serve(
        &["--modules", "catalog,currency,shipping,email,checkout"],
        &checkout_env(
            &pki,
            &sqlite_in(dir.path(), "checkout.db"),
            &cart.https_base(),
            &payment.https_base(),
        ),
    );
    let again = place(
        &checkout.base(),
        &token,
        &order_body(user, "USD", GOOD_CARD),
        Some("three-3"),
    )
    .await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(charges(&payment_db).await, charged + 1);
}

#[tokio::test]
async fn an_order_placed_event_committed_before_a_crash_is_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let db = sqlite_in(dir.path(), "shop.db");
    // A process that commits events but does not deliver them: the state of a process
    // killed between its commit and its publish.
    let mut first = Cleave::serve(
        &[],
        &[
            ("CLEAVE_DATABASE__URL", db.clone()),
            ("CLEAVE_EVENTS__RELAY", "false".into()),
        ],
    );
    let base = first.base();
    let user = "crash-shopper";
    let token = issued_token(&db, user, "shopper");
    let admin = issued_token(&db, "ops", "admin");
    add(&base, &token, user, "0PUK6V6EV0", 1).await;
    let placed = place(&base, &token, &order_body(user, "USD", GOOD_CARD), None).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let order_id = placed.body["order_id"].as_str().expect("id").to_owned();
    let path = format!("/api/email/v1/confirmations?order_id={order_id}");
    let listed = call_as(&base, Method::GET, &path, None, Some(&admin)).await;
    assert_eq!(listed.body, json!([]), "not delivered yet");
    first.kill(); // SIGKILL

    let mut second = Cleave::serve(&[], &[("CLEAVE_DATABASE__URL", db)]);
    // The relay drains the outbox at start, possibly before the process says it listens.
    second.find_log(|v| {
        v["message"] == "order confirmation sent" && v["order_id"] == order_id.as_str()
    });
    let sent = call_as(&second.base(), Method::GET, &path, None, Some(&admin)).await;
    let sent = sent.body.as_array().cloned().unwrap_or_default();
    assert_eq!(sent.len(), 1, "delivered once after the restart");
    assert_eq!(sent[0]["to"], "someone@example.com");
    assert!(
        sent[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains(&order_id)),
        "{:?}",
        sent[0]
    );
}

/// The values of the first column `sql` selects from the database at `url`.
pub(crate) async fn column(url: &str, sql: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = cleave_kernel::db::connect(url, 1).await.expect("open db");
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

#[tokio::test]
async fn with_payment_killed_checkout_opens_its_breaker_and_after_the_restart_charges_once() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = Pki::made_by_cleave();
    let payment_db = sqlite_in(dir.path(), "payment.db");
    let identity_db = sqlite_in(dir.path(), "identity.db");
    let checkout_db = sqlite_in(dir.path(), "checkout.db");
    let cart = Cleave::serve(
        &["--modules", "identity,cart"],
        &tls_env(&pki, &identity_db, None),
    );
    // Payment on a port of its own choosing, so that it comes back where checkout calls it.
    let port = free_port();
    let payment_env = || {
        let mut env = tls_env(&pki, &payment_db, Some(&cart.https_base()));
        env.push(("CLEAVE_SERVER__LISTEN", format!("127.0.0.1:{port}")));
        env
    };
    let mut payment = Cleave::serve(&["--modules", "payment"], &payment_env());
    let mut env = checkout_env(
        &pki,
        &checkout_db,
        &cart.https_base(),
        &payment.https_base(),
    );
    // Open for 1 ms: the first call after payment is back is the breaker's probe.
    env.push(("CLEAVE_REMOTE__BREAKER__OPEN_MS", "1".into()));
    env.push(("CLEAVE_REMOTE__BREAKER__MAX_OPEN_MS", "1".into()));
    let mut checkout = Cleave::serve(
        &["--modules", "catalog,currency,shipping,email,checkout"],
        &env,
    );
    let base = checkout.base();
    let user = "breaker-shopper";
    let token = issued_token(&identity_db, user, "shopper");
    let order = order_body(user, "USD", GOOD_CARD);

    add(&base, &token, user, "OLJCESPC7Z", 1).await;
    let first = place(&base, &token, &order, Some("breaker-1")).await;
    assert_eq!(first.status, 201, "{first:?}");

    // kill -9 between orders: each is refused with 503, and checkout stops calling payment.
    payment.kill();
    for i in 0..3 {
        add(&base, &token, user, "66VCHSJNUP", 1).await;
        place(&base, &token, &order, Some(&format!("breaker-dead-{i}")))
            .await
            .assert_problem(503, "checkout.unavailable");
    }
    let opened = checkout.find_log(|v| {
        v["message"] == "circuit open: calls fail at once" && v["module"] == "payment"
    });
    assert_eq!(opened["level"], "WARN");

    // Payment back on its port with its database: the probe succeeds, the breaker closes,
    // and the next order is charged.
    let _payment = Cleave::serve(&["--modules", "payment"], &payment_env());
    let back = place(&base, &token, &order, Some("breaker-back")).await;
    assert_eq!(back.status, 201, "{back:?}");
    checkout.find_log(|v| {
        v["message"] == "circuit closed: the probe succeeded" && v["module"] == "payment"
    });

    // Every order has its charge, and every charge not refunded has its order.
    let mut orders = column(
        &checkout_db,
        "SELECT order_id FROM checkout_orders WHERE status = 'placed'",
    )
    .await;
    let mut charged = column(
        &payment_db,
        "SELECT reference FROM payment_charges WHERE status = 'charged'",
    )
    .await;
    orders.sort();
    charged.sort();
    assert_eq!(orders.len(), 2);
    assert_eq!(charged, orders, "one charge per order, none without one");
}
