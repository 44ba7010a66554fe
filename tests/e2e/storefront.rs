//! The storefront over HTTP, as Boutique's load generator and a browser use it: plain form
//! posts (no token, no Origin header), cookies, redirects, and pages that still render when
//! optional modules (recommendations, ads) are down.

use std::sync::Arc;

use cleave_kernel::testing::TestDb;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::TestApp;

/// A browser-like session: keeps the cookies the shop sets, follows no redirects itself.
pub(crate) struct Shopper {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    content_type: String,
    csp: Option<String>,
    pub(crate) body: String,
}

impl Shopper {
    fn new(app: &TestApp) -> Self {
        Self::at(app.url(""))
    }

    /// A new visitor of the shop at `base`.
    pub(crate) fn at(base: String) -> Self {
        Self {
            http: crate::helpers::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base,
            cookies: Vec::new(),
        }
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let jar = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if jar.is_empty() {
            req
        } else {
            req.header(COOKIE, jar)
        };
        let res = req.send().await.expect("send");
        for set in res.headers().get_all(SET_COOKIE) {
            let raw = set.to_str().expect("cookie");
            let pair = raw.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let header = |name| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        Page {
            status: res.status(),
            location: header(LOCATION),
            content_type: header(CONTENT_TYPE).unwrap_or_default(),
            csp: header(reqwest::header::CONTENT_SECURITY_POLICY),
            body: res.text().await.expect("body"),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html");
        self.send(req).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }
}

pub(crate) const CHECKOUT_FORM: [(&str, &str); 10] = [
    ("email", "someone@example.com"),
    ("street_address", "1600 Amphitheatre Parkway"),
    ("zip_code", "94043"),
    ("city", "Mountain View"),
    ("state", "CA"),
    ("country", "United States"),
    ("credit_card_number", "4432-8015-6152-0454"),
    ("credit_card_expiration_month", "1"),
    ("credit_card_expiration_year", "2039"),
    ("credit_card_cvv", "672"),
];

/// The session's orders, read through the API as an admin.
async fn orders_of(app: &TestApp, session: &str) -> crate::helpers::Answer {
    let token = app.token("storefront-test-admin", &["admin"]).await;
    let res = reqwest::Client::new()
        .get(app.url(&format!("/api/checkout/v1/orders?user_id={session}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    crate::helpers::read(res).await
}

#[tokio::test]
async fn a_shopper_browses_fills_the_cart_changes_currency_and_checks_out() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);

    let home = s.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.content_type.starts_with("text/html"),
        "{}",
        home.content_type
    );
    assert!(
        home.csp
            .as_deref()
            .is_some_and(|c| c.contains("script-src 'self'")),
        "pages carry a CSP"
    );
    assert!(
        home.body.matches("href=\"/product/").count() >= 9,
        "the grid lists every product"
    );
    assert!(home.body.contains("$18.99"), "prices in USD by default");
    let session = s
        .cookie("shop_session-id")
        .expect("a first visit gets a session")
        .to_owned();

    let product = s.get("/product/OLJCESPC7Z").await;
    assert_eq!(product.status, 200);
    assert!(
        product
            .body
            .contains("name=\"product_id\" value=\"OLJCESPC7Z\"")
    );
    assert_eq!(
        s.cookie("shop_session-id"),
        Some(session.as_str()),
        "the session is kept"
    );

    let added = s
        .post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "2")])
        .await;
    assert_eq!(added.status, 303);
    assert_eq!(added.location.as_deref(), Some("/cart"));
    let cart = s.get("/cart").await;
    assert_eq!(cart.status, 200);
    assert!(cart.body.contains("$39.98"), "2 × $19.99 in the cart");

    // Boutique's load generator posts setCurrency with only the code; we return to the page.
    let switched = s
        .post(
            "/setCurrency",
            &[("currency_code", "EUR"), ("return_to", "/cart")],
        )
        .await;
    assert_eq!(switched.status, 303);
    assert_eq!(switched.location.as_deref(), Some("/cart"));
    assert_eq!(s.cookie("shop_currency"), Some("EUR"));
    let cart = s.get("/cart").await;
    assert!(cart.body.contains('€'), "prices in EUR after the switch");
    // Leaving the shop through return_to is refused.
    let away = s
        .post(
            "/setCurrency",
            &[("currency_code", "EUR"), ("return_to", "//evil.example/")],
        )
        .await;
    assert_eq!(away.location.as_deref(), Some("/"));

    let confirmation = s.post("/cart/checkout", &CHECKOUT_FORM).await;
    assert_eq!(confirmation.status, 200, "{}", confirmation.body);
    assert!(confirmation.body.contains("Your order is complete!"));
    assert!(confirmation.body.contains('€'));
    let orders = orders_of(&app, &session).await;
    let orders = orders.body.as_array().cloned().unwrap_or_default();
    assert_eq!(orders.len(), 1, "the order is the session's");
    let order_id = orders[0]["order_id"].as_str().expect("id");
    assert!(
        confirmation.body.contains(order_id),
        "the page shows the order id"
    );
    let cart = s.get("/cart").await;
    assert!(
        !cart.body.contains("$39.98") && !cart.body.contains("credit_card_number"),
        "empty after the order"
    );

    let out = s.get("/logout").await;
    assert_eq!(out.status, 303);
    assert_eq!(
        s.cookie("shop_session-id"),
        None,
        "logout clears the session"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_declined_card_shows_the_form_again_and_places_nothing() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    s.post("/cart", &[("product_id", "L9ECAV7KIM"), ("quantity", "1")])
        .await;
    let mut form = CHECKOUT_FORM.to_vec();
    form[6] = ("credit_card_number", "378282246310005"); // American Express
    let page = s.post("/cart/checkout", &form).await;
    assert_eq!(page.status, 402);
    assert!(page.body.contains("declined"), "{}", page.body);
    assert!(
        page.body.contains("credit_card_number"),
        "the form is shown again"
    );
    let session = s.cookie("shop_session-id").expect("session").to_owned();
    let orders = orders_of(&app, &session).await;
    assert_eq!(orders.body, json!([]));
    app.stop().await;
}

#[tokio::test]
async fn unknown_pages_and_products_get_the_shops_404_page_and_api_callers_a_problem() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    for path in ["/product/NOSUCHTHING", "/product/bad%20id", "/no-such-page"] {
        let page = s.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.content_type.starts_with("text/html"), "{path}");
        assert!(page.body.contains("find that"), "{path}: {}", page.body);
    }
    // The page names the request id a person can quote to support.
    let res = reqwest::Client::new()
        .get(app.url("/no-such-page"))
        .header("accept", "text/html")
        .header("x-request-id", "support-ticket-7")
        .send()
        .await
        .expect("send");
    assert!(res.text().await.expect("body").contains("support-ticket-7"));
    let api = crate::helpers::get(app.url("").as_str(), "/no-such-page").await;
    api.assert_problem(404, "cleave.route_not_found");
    let bad = s
        .post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "0")])
        .await;
    assert_eq!(bad.status, 400, "quantity 0 is refused");
    let unknown = s
        .post("/cart", &[("product_id", "NOSUCHTHING"), ("quantity", "1")])
        .await;
    assert_eq!(unknown.status, 400, "unknown products are refused");
    let currency = s.post("/setCurrency", &[("currency_code", "XXX")]).await;
    assert_eq!(currency.status, 400);
    app.stop().await;
}

#[tokio::test]
async fn pages_render_without_recommendations_and_ads_when_those_modules_are_down() {
    let app = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("modules.recommendation.url", json!("http://127.0.0.1:1")),
            ("modules.ads.url", json!("http://127.0.0.1:1")),
            (
                "server.modules",
                json!([
                    "identity",
                    "catalog",
                    "currency",
                    "cart",
                    "shipping",
                    "payment",
                    "email",
                    "checkout",
                    "storefront"
                ]),
            ),
        ],
    )
    .await;
    let mut s = Shopper::new(&app);
    let home = s.get("/").await;
    assert_eq!(home.status, 200);
    let product = s.get("/product/66VCHSJNUP").await;
    assert_eq!(product.status, 200, "{}", product.body);
    assert!(product.body.contains("66VCHSJNUP"));
    s.post("/cart", &[("product_id", "66VCHSJNUP"), ("quantity", "1")])
        .await;
    let cart = s.get("/cart").await;
    assert_eq!(cart.status, 200);
    let done = s.post("/cart/checkout", &CHECKOUT_FORM).await;
    assert_eq!(done.status, 200, "checkout works without recommendations");
    // The storefront can do without them (`optional`): the process stays ready and says
    // what is missing.
    let ready = crate::helpers::get(&app.url(""), "/health/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    for module in ["ads", "recommendation"] {
        assert!(
            ready.body["checks"][format!("module:{module}")]
                .as_str()
                .is_some_and(|c| c.starts_with("degraded: ")),
            "{ready:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_required_module_down_makes_the_process_unready() {
    // The storefront cannot show a page without the catalog.
    let app = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[
            ("modules.catalog.url", json!("http://127.0.0.1:1")),
            (
                "server.modules",
                json!([
                    "identity",
                    "currency",
                    "cart",
                    "recommendation",
                    "shipping",
                    "payment",
                    "ads",
                    "email",
                    "checkout",
                    "storefront"
                ]),
            ),
        ],
    )
    .await;
    let ready = crate::helpers::get(&app.url(""), "/health/ready").await;
    ready.assert_problem(503, "cleave.not_ready");
    assert!(
        ready.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("module:catalog")),
        "{ready:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn static_assets_robots_and_health_are_served_from_the_binary() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    for (path, kind) in [
        ("/static/css/style.css", "text/css"),
        ("/static/js/app.js", "javascript"),
        ("/static/img/products/OLJCESPC7Z.svg", "image/svg+xml"),
        ("/robots.txt", "text/plain"),
    ] {
        let res = s.get(path).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(
            res.content_type.contains(kind),
            "{path}: {}",
            res.content_type
        );
        assert!(!res.body.is_empty());
    }
    assert_eq!(s.get("/static/nope.css").await.status, 404);
    let health = s.get("/_healthz").await;
    assert_eq!((health.status.as_u16(), health.body.as_str()), (200, "ok"));
    app.stop().await;
}

#[tokio::test]
async fn forms_posted_from_another_site_are_refused_and_change_nothing() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    s.get("/").await; // a session
    let own = app.url("");
    let http = s.http.clone();
    let post = |origin: Option<(&'static str, String)>| {
        let mut req = http
            .post(app.url("/cart"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("product_id=OLJCESPC7Z&quantity=1");
        if let Some((name, value)) = origin {
            req = req.header(name, value);
        }
        req
    };
    for (name, value) in [
        ("origin", "https://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("referer", "https://evil.example/shop".to_owned()),
    ] {
        let page = s.send(post(Some((name, value.clone())))).await;
        assert_eq!(page.status, 403, "{name}: {value}");
        assert!(page.body.contains("another site"), "{}", page.body);
    }
    let cart = s.get("/cart").await;
    assert!(
        !cart.body.contains("credit_card_number"),
        "nothing was added"
    );
    // The shop's own origin, and no origin at all (Boutique's load generator), pass.
    let same = s
        .send(post(Some(("origin", own.trim_end_matches('/').to_owned()))))
        .await;
    assert_eq!(same.status, 303);
    let none = s.send(post(None)).await;
    assert_eq!(none.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn pages_carry_security_headers_and_cors_is_off_unless_configured() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let res = reqwest::Client::new()
        .get(app.url("/"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .expect("send");
    let h = res.headers();
    assert_eq!(
        h.get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert_eq!(
        h.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    app.stop().await;

    let app = TestApp::start(
        Some(Arc::new(TestDb::sqlite())),
        &[(
            "server.cors_allowed_origins",
            json!(["https://admin.example"]),
        )],
    )
    .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                app.url("/api/cart/v1/carts/x/items"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let allowed = preflight("https://admin.example").await.expect("send");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://admin.example")
    );
    let other = preflight("https://evil.example").await.expect("send");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_shopper_registers_keeps_their_cart_and_sees_their_order_history() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    let login_page = s.get("/login").await;
    assert_eq!(login_page.status, 200);
    assert!(login_page.body.contains("name=\"password\""));
    // An anonymous cart...
    s.post("/cart", &[("product_id", "9SIQT8TOJO"), ("quantity", "3")])
        .await;
    // ...follows the shopper into their new account.
    let bad = s
        .post(
            "/register",
            &[("email", "fan@example.com"), ("password", "short")],
        )
        .await;
    assert_eq!(bad.status, 400, "a short password is refused");
    let done = s
        .post(
            "/register",
            &[
                ("email", "Fan@Example.com"),
                ("password", "a long passphrase"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(s.cookie("shop_token").is_some(), "signed in");
    let home = s.get("/").await;
    assert!(
        home.body.contains("Sign out"),
        "the header knows who is signed in"
    );
    let cart = s.get("/cart").await;
    assert!(
        cart.body.contains("fan@example.com"),
        "the checkout form has their address"
    );
    assert!(
        cart.body.contains("Bamboo") || cart.body.contains("9SIQT8TOJO"),
        "the cart came along"
    );
    let confirmation = s.post("/cart/checkout", &CHECKOUT_FORM).await;
    assert_eq!(confirmation.status, 200);
    let history = s.get("/orders").await;
    assert_eq!(history.status, 200);
    assert!(history.body.contains("Your orders"));
    let order_id = confirmation
        .body
        .split("<code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the confirmation shows the order id")
        .to_owned();
    assert!(
        history.body.contains(&order_id),
        "the order is in the history"
    );

    // When the access token has expired (here: dropped), the refresh token renews it.
    let old_token = s.cookie("shop_token").expect("token").to_owned();
    s.cookies.retain(|(n, _)| n != "shop_token");
    let renewed = s.get("/orders").await;
    assert_eq!(renewed.status, 200, "still signed in");
    assert!(renewed.body.contains(&order_id));
    let new_token = s.cookie("shop_token").expect("a renewed token").to_owned();
    assert_ne!(new_token, old_token);
    let refresh = s.cookie("shop_refresh").expect("refresh").to_owned();

    // Signing out forgets the account and revokes the session server-side.
    s.get("/logout").await;
    assert_eq!(s.cookie("shop_refresh"), None);
    s.cookies.push(("shop_refresh".into(), refresh));
    let replay = s.get("/orders").await;
    assert_eq!(
        replay.status, 303,
        "a refresh token of an ended session signs nobody in"
    );
    s.cookies.retain(|(n, _)| n != "shop_refresh");
    assert_eq!(s.cookie("shop_token"), None);
    let away = s.get("/orders").await;
    assert_eq!(
        (away.status.as_u16(), away.location.as_deref()),
        (303, Some("/login"))
    );
    // Wrong password: the form again, 401.
    let wrong = s
        .post(
            "/login",
            &[("email", "fan@example.com"), ("password", "not the one")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong e-mail address or password"));
    let again = s
        .post(
            "/login",
            &[
                ("email", "fan@example.com"),
                ("password", "a long passphrase"),
            ],
        )
        .await;
    assert_eq!(again.status, 303);
    assert!(s.get("/orders").await.body.contains(&order_id));
    app.stop().await;
}

#[tokio::test]
async fn a_session_cookie_naming_someone_else_opens_nobodys_cart() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let base = app.url("");
    // An API guest fills their cart: 3 × $19.99.
    let (victim, token) = crate::helpers::guest(&base).await;
    let added = crate::helpers::call_as(
        &base,
        reqwest::Method::POST,
        &format!("/api/cart/v1/carts/{victim}/items"),
        Some(r#"{"product_id":"OLJCESPC7Z","quantity":3}"#),
        Some(&token),
    )
    .await;
    assert_eq!(added.status, 200, "{added:?}");
    // The storefront's own sessions have a prefix no user or guest id has.
    let mut shopper = Shopper::new(&app);
    shopper.get("/").await;
    let own = shopper.cookie("shop_session-id").expect("a session");
    assert!(own.starts_with(storefront::SESSION_PREFIX), "{own}");
    // A cookie naming the guest (whose id travels in URLs), or anything else the
    // storefront did not mint, is replaced by a new session: the cart shown is empty.
    for forged in [victim.as_str(), "alice", "session-not-a-uuid"] {
        let mut s = Shopper::new(&app);
        s.cookies
            .push(("shop_session-id".into(), forged.to_owned()));
        let cart = s.get("/cart").await;
        assert_eq!(cart.status, 200);
        assert!(
            !cart.body.contains("$59.97") && !cart.body.contains("credit_card_number"),
            "{forged}: another's cart is shown"
        );
        let session = s.cookie("shop_session-id").expect("a new session");
        assert!(
            session != forged && session.starts_with(storefront::SESSION_PREFIX),
            "{forged} -> {session}"
        );
    }
    // The guest's cart is untouched.
    let cart = crate::helpers::call_as(
        &base,
        reqwest::Method::GET,
        &format!("/api/cart/v1/carts/{victim}"),
        None,
        Some(&token),
    )
    .await;
    assert_eq!(cart.body["items"][0]["quantity"], 3, "{cart:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_card_form_asks_for_the_cvv_payment_accepts() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    s.post("/cart", &[("product_id", "L9ECAV7KIM"), ("quantity", "1")])
        .await;
    let cart = s.get("/cart").await;
    // The form's rule: exactly three digits, and the hint says so.
    assert!(
        cart.body.contains(r#"maxlength="3" pattern="[0-9]{3}""#),
        "{}",
        cart.body
    );
    assert!(
        cart.body.contains("The 3 digits on the back"),
        "{}",
        cart.body
    );
    // Payment's rule is the same: three digits pass, four do not.
    let card = |cvv: &str| cleave_domain::CreditCard {
        number: "4432-8015-6152-0454".into(),
        cvv: cvv.into(),
        expiration_year: 2039,
        expiration_month: 1,
    };
    assert!(payment_api::validate_card(&card("672"), 2026, 1).is_ok());
    assert!(payment_api::validate_card(&card("6721"), 2026, 1).is_err());
    // A form sent anyway with four digits is declined and shown again.
    let mut form = CHECKOUT_FORM.to_vec();
    form[9] = ("credit_card_cvv", "6721");
    let page = s.post("/cart/checkout", &form).await;
    assert_eq!(page.status, 402, "{}", page.body);
    assert!(page.body.contains("credit_card_number"), "the form again");
    app.stop().await;
}

#[tokio::test]
async fn password_fields_are_styled_like_the_other_fields() {
    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let mut s = Shopper::new(&app);
    let login = s.get("/login").await;
    assert!(login.body.contains(r#"type="password""#), "{}", login.body);
    let css = s.get("/static/css/style.css").await.body;
    // One rule styles every text-like field, password fields included.
    let rule = css
        .split('{')
        .find(|selectors| selectors.contains(r#"input[type="email"]"#))
        .expect("the text field rule");
    assert!(rule.contains(r#"input[type="password"]"#), "{rule}");
    app.stop().await;
}
