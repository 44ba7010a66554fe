//! Identity in the application: the admin commands (`user create`, `token issue`,
//! `keys rotate`), bearer tokens verified by every process from identity's published keys
//! (identity in the same process and in its own), and invalid tokens refused on any route
//! with 401 problem+json.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, call_json as call, raw, read};
use crate::process::Cleave;

/// Runs `cleave ARGS` against the database `url`, with `stdin` as input; returns stdout.
pub(crate) fn admin(args: &[&str], url: &str, stdin: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.args(args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("CLEAVE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLEAVE_DATABASE__URL", url);
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "cleave {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Identity alone in one OS process (database `identity.db` in `dir`), the `modules` in
/// another (`main.db`) calling it.
fn identity_and_main(dir: &std::path::Path, modules: &str) -> (Cleave, Cleave) {
    let identity = Cleave::serve(
        &["--modules", "identity"],
        &[("CLEAVE_DATABASE__URL", sqlite_url(dir, "identity.db"))],
    );
    let main = Cleave::serve(
        &["--modules", modules],
        &[
            ("CLEAVE_DATABASE__URL", sqlite_url(dir, "main.db")),
            ("CLEAVE_MODULES__IDENTITY__URL", identity.base()),
        ],
    );
    (identity, main)
}

fn sqlite_url(dir: &std::path::Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

#[tokio::test]
async fn an_invalid_bearer_token_is_refused_on_any_route_with_401() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let base = app.url("");
    for path in [
        "/api/catalog/v1/products",
        "/api/identity/v1/me",
        "/api/cart/v1/carts/x",
    ] {
        let res = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth("not.a.token")
            .send()
            .await
            .expect("send");
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\""),
            "{path}"
        );
        read(res).await.assert_problem(401, "auth.unauthenticated");
    }
    // Without a token the public routes answer as before.
    assert_eq!(
        call(&base, Method::GET, "/api/catalog/v1/products", None, None)
            .await
            .status,
        200
    );
    call(&base, Method::GET, "/api/identity/v1/me", None, None)
        .await
        .assert_problem(401, "identity.unauthenticated");
    app.stop().await;
}

#[tokio::test]
async fn users_log_in_through_any_process_and_tokens_survive_a_key_rotation() {
    let dir = tempfile::tempdir().expect("dir");
    let identity_db = sqlite_url(dir.path(), "identity.db");
    // An operator creates an admin; the password comes on stdin, never on the command line.
    let created = admin(
        &[
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--role",
            "admin",
        ],
        &identity_db,
        "a long admin passphrase\n",
    );
    assert!(
        created.contains("ops@example.com") && created.contains("admin"),
        "{created}"
    );

    let (_identity, main) = identity_and_main(dir.path(), "catalog,currency,cart,recommendation");
    let base = main.base();

    // Register and log in through the main process (forwarded to identity).
    let reg = call(
        &base,
        Method::POST,
        "/api/identity/v1/users",
        Some(json!({"email": "shopper@example.com", "password": "correct horse"})),
        None,
    )
    .await;
    assert_eq!(reg.status, 202, "{reg:?}");
    let login = call(
        &base,
        Method::POST,
        "/api/identity/v1/tokens",
        Some(json!({"email": "shopper@example.com", "password": "correct horse"})),
        None,
    )
    .await;
    assert_eq!(login.status, 200, "{login:?}");
    let token = login.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // The main process verifies the token from identity's JWKS, then relays it.
    let me = call(
        &base,
        Method::GET,
        "/api/identity/v1/me",
        None,
        Some(&token),
    )
    .await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["email"], "shopper@example.com");
    assert_eq!(
        call(
            &base,
            Method::GET,
            "/api/catalog/v1/products",
            None,
            Some(&token)
        )
        .await
        .status,
        200,
        "a valid token is accepted on the main process's own routes"
    );

    // Rotating the keys (an admin command on identity's database) keeps old tokens valid,
    // and tokens signed with the new key verify in the main process too.
    let rotated = admin(&["keys", "rotate"], &identity_db, "");
    assert!(rotated.contains("new signing key"), "{rotated}");
    assert_eq!(
        call(
            &base,
            Method::GET,
            "/api/identity/v1/me",
            None,
            Some(&token)
        )
        .await
        .status,
        200,
        "a token signed before the rotation"
    );
    let fresh = admin(
        &[
            "token",
            "issue",
            "--sub",
            me.body["user_id"].as_str().expect("id"),
            "--role",
            "shopper",
            "--ttl",
            "60",
        ],
        &identity_db,
        "",
    );
    let fresh = fresh.trim();
    assert_eq!(
        call(&base, Method::GET, "/api/identity/v1/me", None, Some(fresh))
            .await
            .status,
        200,
        "a token signed after the rotation"
    );

    // The refresh token rotates through the main process as well; its reuse ends the session.
    let refresh = login.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(crate::helpers::refresh(&base, &refresh).await.status, 200);
    crate::helpers::refresh(&base, &refresh)
        .await
        .assert_problem(401, "identity.refresh_token_reused");

    // Deleting the user (as the admin) makes their still-unexpired token useless at once.
    let admin_login = call(
        &base,
        Method::POST,
        "/api/identity/v1/tokens",
        Some(json!({"email": "ops@example.com", "password": "a long admin passphrase"})),
        None,
    )
    .await;
    let admin_token = admin_login.body["access_token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    let user_id = me.body["user_id"].as_str().expect("id");
    call(
        &base,
        Method::DELETE,
        &format!("/api/identity/v1/users/{user_id}"),
        None,
        Some(&token),
    )
    .await
    .assert_problem(403, "identity.forbidden");
    let deleted = call(
        &base,
        Method::DELETE,
        &format!("/api/identity/v1/users/{user_id}"),
        None,
        Some(&admin_token),
    )
    .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    call(
        &base,
        Method::GET,
        "/api/catalog/v1/products",
        None,
        Some(&token),
    )
    .await
    .assert_problem(401, "auth.unauthenticated");
}

#[tokio::test]
async fn login_brute_force_is_slowed_per_account_and_per_client_with_429() {
    let app = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[("modules.identity.login_per_ip_per_minute", json!(8))],
    )
    .await;
    let base = app.url("");
    // Every spelling of the login path is the login route, and counts against the same
    // limits: percent-encoded letters, doubled slashes, dot segments.
    const SPELLINGS: [&str; 4] = [
        "/api/identity/v1/tokens",
        "/api/identity/v1/%74okens",
        "//api//identity/v1/tokens",
        "/api/identity/v1/x/../%2e/tokens",
    ];
    let spelled = |i: usize, email: &str| {
        let body = json!({"email": email, "password": "guess-guess"}).to_string();
        let base = app.base.clone();
        async move { raw(&base, "POST", SPELLINGS[i % SPELLINGS.len()], Some(&body)).await }
    };
    let attempt = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/identity/v1/tokens"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("send")
        }
    };
    // Per account: five guesses a minute, then 429 with Retry-After, even with the right
    // password.
    for (i, spelling) in SPELLINGS.iter().cycle().take(5).enumerate() {
        let answer = spelled(i, "victim@example.com").await;
        assert_eq!(answer.status, 401, "{spelling}: {answer:?}");
        assert_eq!(answer.body["code"], "identity.invalid_credentials");
    }
    let limited = attempt("victim@example.com", "guess-guess").await;
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    read(limited)
        .await
        .assert_problem(429, "identity.too_many_attempts");
    // Per client address: spraying other accounts hits the edge limit (8 a minute here).
    read(attempt("other-1@example.com", "guess-guess").await)
        .await
        .assert_problem(401, "identity.invalid_credentials");
    let mut edge = None;
    for i in 2..10 {
        let res = spelled(i, &format!("other-{i}@example.com")).await;
        if res.status == 429 {
            edge = Some(res);
            break;
        }
        assert_eq!(res.body["code"], "identity.invalid_credentials", "{res:?}");
    }
    let edge = edge.expect("the client's ninth login in a minute is refused, however spelled");
    assert!(edge.header("retry-after").is_some());
    assert_eq!(edge.body["code"], "cleave.rate_limited");
    assert_eq!(edge.header("x-content-type-options"), Some("nosniff"));
    app.stop().await;
}

/// Registers `email` (password "correct horse") and logs in through `base`; checks the
/// access token works. Returns (access token, refresh token, user id).
async fn sign_up(base: &str, email: &str) -> (String, String, String) {
    let creds = json!({"email": email, "password": "correct horse"});
    let created = call(
        base,
        Method::POST,
        "/api/identity/v1/users",
        Some(creds.clone()),
        None,
    )
    .await;
    assert_eq!(created.status, 202, "{created:?}");
    let pair = call(
        base,
        Method::POST,
        "/api/identity/v1/tokens",
        Some(creds),
        None,
    )
    .await;
    let access = pair.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let refresh = pair.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let me = call(
        base,
        Method::GET,
        "/api/identity/v1/me",
        None,
        Some(&access),
    )
    .await;
    assert_eq!(me.status, 200, "the genuine token passes: {me:?}");
    let user_id = me.body["user_id"].as_str().expect("id").to_owned();
    (access, refresh, user_id)
}

#[tokio::test]
async fn with_identity_in_its_own_process_every_forged_or_stale_token_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let identity_db = sqlite_url(dir.path(), "identity.db");
    let (_identity, main) = identity_and_main(dir.path(), "catalog,currency,cart,recommendation");
    let base = main.base();
    let (_, refresh, sub) = sign_up(&base, "split@example.com").await;

    let identity_conn = cleave_kernel::db::connect(&identity_db, 1)
        .await
        .expect("open identity db");
    let cases = identity::testing::forged_tokens(&identity_conn, &sub, &refresh).await;
    // Each is refused by the main process itself (its own route) and on a forwarded one.
    for forged in &cases {
        for path in ["/api/catalog/v1/products", "/api/identity/v1/me"] {
            let answer = call(&base, Method::GET, path, None, Some(&forged.token)).await;
            let case = forged.case;
            assert_eq!(answer.status, 401, "{case} on {path}: {answer:?}");
            answer.assert_problem(401, "auth.unauthenticated");
        }
    }
}

#[tokio::test]
async fn with_identity_in_its_own_process_owners_admins_limits_and_body_sizes_hold() {
    let dir = tempfile::tempdir().expect("dir");
    let (_identity, main) = identity_and_main(
        dir.path(),
        "catalog,currency,cart,recommendation,shipping,payment,ads,email,checkout,storefront",
    );
    let base = main.base();
    let (alice_token, _, alice_id) = sign_up(&base, "alice@example.com").await;
    let (bob_token, _, _) = sign_up(&base, "bob@example.com").await;
    let alice = (&alice_id, &alice_token);
    let bob = &bob_token;

    // Nobody but Alice fills her cart; she orders as herself.
    let add = |token: Option<&'static str>| {
        let (base, path) = (
            base.clone(),
            format!("/api/cart/v1/carts/{}/items", alice.0),
        );
        async move {
            let body = Some(json!({"product_id": "OLJCESPC7Z", "quantity": 1}));
            call(&base, Method::POST, &path, body, token).await
        }
    };
    add(None).await.assert_problem(401, "cart.unauthenticated");
    let as_bob = call(
        &base,
        Method::POST,
        &format!("/api/cart/v1/carts/{}/items", alice.0),
        Some(json!({"product_id": "OLJCESPC7Z", "quantity": 1})),
        Some(bob),
    )
    .await;
    as_bob.assert_problem(403, "cart.forbidden");
    let added = call(
        &base,
        Method::POST,
        &format!("/api/cart/v1/carts/{}/items", alice.0),
        Some(json!({"product_id": "OLJCESPC7Z", "quantity": 1})),
        Some(alice.1),
    )
    .await;
    assert_eq!(added.status, 200, "{added:?}");
    let order = call(
        &base,
        Method::POST,
        "/api/checkout/v1/orders",
        Some(json!({
            "user_id": alice.0, "user_currency": "USD", "email": "alice@example.com",
            "address": {"street_address": "1 Main St", "city": "Springfield", "state": "",
                        "country": "US", "zip_code": "12345"},
            "credit_card": {"number": "4432-8015-6152-0454", "cvv": "672",
                            "expiration_year": 2039, "expiration_month": 1}
        })),
        Some(alice.1),
    )
    .await;
    assert_eq!(order.status, 201, "{order:?}");
    let order_id = order.body["order_id"].as_str().expect("id");
    let path = format!("/api/checkout/v1/orders/{order_id}");
    assert_eq!(
        call(&base, Method::GET, &path, None, Some(alice.1))
            .await
            .status,
        200
    );
    // Another user's order: not found; another user's list: forbidden.
    call(&base, Method::GET, &path, None, Some(bob))
        .await
        .assert_problem(404, "checkout.order_not_found");
    call(
        &base,
        Method::GET,
        &format!("/api/checkout/v1/orders?user_id={}", alice.0),
        None,
        Some(bob),
    )
    .await
    .assert_problem(403, "checkout.forbidden");
    // Admin routes with a shopper token.
    call(
        &base,
        Method::GET,
        "/api/checkout/v1/orders",
        None,
        Some(alice.1),
    )
    .await
    .assert_problem(403, "checkout.forbidden");
    call(
        &base,
        Method::DELETE,
        "/api/catalog/v1/products/OLJCESPC7Z",
        None,
        Some(alice.1),
    )
    .await
    .assert_problem(403, "catalog.forbidden");
    // An oversized body is refused before any module sees it.
    let big = json!({"email": "x@example.com", "password": "p".repeat(100_000)});
    call(
        &base,
        Method::POST,
        "/api/identity/v1/users",
        Some(big),
        None,
    )
    .await
    .assert_problem(413, "cleave.payload_too_large");
    // Login brute force, through the main process: identity's per-account limit, with its
    // Retry-After relayed.
    let guess = json!({"email": "alice@example.com", "password": "wrong guess!"});
    let mut limited = None;
    for _ in 0..6 {
        let res = reqwest::Client::new()
            .post(format!("{base}/api/identity/v1/tokens"))
            .header("content-type", "application/json")
            .body(guess.to_string())
            .send()
            .await
            .expect("send");
        if res.status() == 429 {
            limited = Some(res);
            break;
        }
    }
    let limited = limited.expect("the sixth login in a minute is refused");
    assert!(
        limited.headers().get("retry-after").is_some(),
        "Retry-After relayed"
    );
    read(limited)
        .await
        .assert_problem(429, "identity.too_many_attempts");
}
