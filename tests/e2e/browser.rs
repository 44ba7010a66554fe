//! The storefront in a real browser: headless Chromium, driven over WebDriver (ChromeDriver,
//! through `fantoccini`), shopping on the whole app started in process with a fresh SQLite
//! database.
//!
//! What it proves, beyond the HTTP-level tests: the pages render and link together as a shopper
//! sees them, with the page's own CSS and JavaScript running under the strict CSP. A shopper
//! lands on the home page (9 products), opens the sunglasses, adds two to the cart, switches
//! the currency to EUR from the header (the select submits itself when JavaScript runs; the
//! test submits the form itself if it did not), and places the prefilled order: the
//! confirmation shows an order id, a tracking id and a total in euros, and the cart is empty
//! afterwards. An unknown path gets the friendly HTML 404 page. Cookies (session, currency)
//! and the POST-redirect-GET flows are the browser's own, not simulated.
//!
//! Every page is saved as a PNG under `$CARGO_TARGET_TMPDIR/browser/` (the path is printed).
//!
//! Chromium and ChromeDriver must be installed (`scripts/install-browser.sh`); when they are
//! missing the test fails, it never skips.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cleave_kernel::testing::TestDb;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{TestApp, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "run scripts/install-browser.sh to install Chromium and ChromeDriver";

/// Longest wait for ChromeDriver to listen (a bound on an external process starting up).
const DRIVER_START: Duration = Duration::from_secs(30);
/// Longest wait for a page to show what the test expects after a click or a submit.
const PAGE_WAIT: Duration = Duration::from_secs(30);
/// How long the currency select gets to submit itself before the test submits the form.
const AUTO_SUBMIT_WAIT: Duration = Duration::from_secs(5);

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The product the shopper buys: sunglasses.
const PRODUCT_ID: &str = "OLJCESPC7Z";
/// The header's currency select once the page was rendered in euros.
const EUR_CHOSEN: &str = "form.currency-form select#currency_code option[value='EUR'][selected]";

#[tokio::test]
async fn a_shopper_browses_adds_to_cart_changes_currency_and_checks_out_in_chromium() {
    require_browser();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", shots.display()));
    println!("browser screenshots: {}", shots.display());

    let app = TestApp::single(Arc::new(TestDb::sqlite())).await;
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let client = open_browser(&driver, profile.path()).await;

    // Whatever happens in the scenario, the browser session is closed before the test ends
    // (killing ChromeDriver alone would leave Chromium running).
    let outcome = AssertUnwindSafe(shop(&client, &app, &shots))
        .catch_unwind()
        .await;
    let closed = client.close().await;
    app.stop().await;
    drop(driver);
    drop(profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("the browser session closes");
}

#[tokio::test]
async fn an_admin_sees_every_process_its_call_edges_and_slowest_requests_in_chromium() {
    require_browser();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator");
    std::fs::create_dir_all(&shots)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", shots.display()));
    println!("operator page screenshot: {}", shots.display());

    // Identity, the catalog, and a process calling both.
    let shop = crate::faults::Shop::start(None).await;
    let base = shop.main.base();
    let recommend = "/api/recommendation/v1/recommendations?user_id=u&product_ids=OLJCESPC7Z";
    for _ in 0..5 {
        assert_eq!(crate::helpers::get(&base, recommend).await.status, 200);
    }
    let identity_db = shop.db("identity.db");
    let admin = crate::helpers::issued_token(&identity_db, "ops", "admin");
    let shopper = crate::helpers::issued_token(&identity_db, "shopper-1", "shopper");
    // Only admins: no token is a 401, a shopper's a 403.
    let page = "/_cleave/";
    crate::helpers::call_as(&base, reqwest::Method::GET, page, None, None)
        .await
        .assert_problem(401, "auth.unauthenticated");
    crate::helpers::call_as(&base, reqwest::Method::GET, page, None, Some(&shopper))
        .await
        .assert_problem(403, "auth.forbidden");

    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let client = open_browser(&driver, profile.path()).await;
    let outcome = AssertUnwindSafe(operate(&client, &base, &admin, &shots))
        .catch_unwind()
        .await;
    let closed = client.close().await;
    drop(driver);
    drop(profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("the browser session closes");
}

/// The admin, signed in (the browser's token cookie), opens the operator page.
async fn operate(client: &Client, base: &str, admin: &str, shots: &Path) {
    // The cookie belongs to the process's origin: open it first (by name: browsers set no
    // cookie for an IP address through WebDriver).
    let base = base.replace("127.0.0.1", "localhost");
    client
        .goto(&format!("{base}/health/live"))
        .await
        .expect("open the origin");
    // As the shop's sign-in sets it (SameSite=Lax; WebDriver's default, None, needs Secure).
    let cookie = fantoccini::cookies::Cookie::parse(format!(
        "{}={admin}; Domain=localhost; Path=/; HttpOnly; SameSite=Lax",
        cleave_kernel::auth::TOKEN_COOKIE
    ))
    .expect("a cookie");
    client
        .add_cookie(cookie)
        .await
        .expect("the admin's token cookie");
    client
        .goto(&format!("{base}/_cleave/"))
        .await
        .expect("open the operator page");
    wait_for(client, "#placement", "the operator page").await;

    // Where each module runs, and one section per process: this one and the two it calls.
    let placement = text(client, "table").await;
    assert!(
        placement.contains("recommendation here")
            && placement.contains("catalog http://127.0.0.1:"),
        "{placement}"
    );
    let sections = client
        .find_all(Locator::Css("section.process"))
        .await
        .expect("sections");
    assert_eq!(sections.len(), 3, "this process, catalog's and identity's");
    let mut hosts = Vec::new();
    for section in &sections {
        hosts.push(text_in(section, "p").await);
    }
    for module in ["recommendation", "catalog", "identity"] {
        assert!(
            hosts.iter().any(|h| h
                .split_once("hosts ")
                .is_some_and(|(_, list)| list.split(", ").any(|m| m == module))),
            "a process hosting {module}: {hosts:?}"
        );
    }
    // This process's edge to the catalog, with the five calls made, and the catalog's side.
    let edges = text_in(&sections[0], "table.edges").await;
    let edge = edges
        .lines()
        .find(|l| l.starts_with("recommendation catalog remote"))
        .unwrap_or_else(|| panic!("recommendation -> catalog: {edges}"));
    let calls: u64 = edge
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("calls in {edge}"));
    assert!(calls >= 5, "{edge}");
    let mut served = false;
    for section in &sections[1..] {
        served |= text_in(section, "table.edges")
            .await
            .lines()
            .any(|l| l.starts_with("edge catalog local"));
    }
    assert!(served, "the catalog process shows the calls it served");
    // Breakers, and the slowest requests with their trace ids.
    let breakers = text_in(&sections[0], "table.breakers").await;
    assert!(breakers.contains("catalog closed"), "{breakers}");
    let slowest = text_in(&sections[0], "table.slowest").await;
    assert!(
        slowest
            .split_whitespace()
            .any(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit())),
        "a trace id among the slowest requests: {slowest}"
    );
    screenshot(client, shots, "operator.png").await;
}

/// The shopper's visit, page by page.
async fn shop(client: &Client, app: &TestApp, shots: &Path) {
    // Home: the shop's name, every product as a card.
    client
        .goto(&app.url("/"))
        .await
        .expect("open the home page");
    wait_for(client, "#products .product-grid", "the home page").await;
    let title = client.title().await.expect("page title");
    assert!(title.contains("Cleave Boutique"), "home title: {title:?}");
    let brand = text(client, "header .brand-name").await;
    assert_eq!(brand, "Cleave Boutique", "the header names the shop");
    let cards = client
        .find_all(Locator::Css("article.card a.card-link[href^='/product/']"))
        .await
        .expect("product cards");
    assert!(
        cards.len() >= 9,
        "{} product cards on the home page",
        cards.len()
    );
    screenshot(client, shots, "01-home.png").await;

    // Product page, reached by clicking its card.
    let link = client
        .find(Locator::Css(&format!(
            "article.card a.card-link[href='/product/{PRODUCT_ID}']"
        )))
        .await
        .expect("a card links to the sunglasses");
    let name = link.text().await.expect("card title");
    assert!(!name.trim().is_empty(), "the card shows the product's name");
    link.click().await.expect("click the product card");
    let heading = wait_for(client, "h1.product-name", "the product page").await;
    assert_eq!(path(client).await, format!("/product/{PRODUCT_ID}"));
    assert_eq!(heading.text().await.expect("product h1"), name);
    let suggestions = client
        .find_all(Locator::Css("section.recs article.card"))
        .await
        .expect("recommendations");
    assert!(
        !suggestions.is_empty(),
        "the product page shows recommendations"
    );
    screenshot(client, shots, "02-product.png").await;

    // Two of them into the cart: the form posts, the shop redirects to the cart.
    client
        .find(Locator::Css("form.add-to-cart select[name='quantity']"))
        .await
        .expect("quantity select")
        .select_by_value("2")
        .await
        .expect("choose quantity 2");
    client
        .form(Locator::Css("form.add-to-cart"))
        .await
        .expect("add-to-cart form")
        .submit()
        .await
        .expect("submit add to cart");
    wait_for(client, "table.cart-table", "the cart after adding").await;
    assert_eq!(path(client).await, "/cart");
    let lines = client
        .find_all(Locator::Css("table.cart-table tbody tr"))
        .await
        .expect("cart lines");
    assert_eq!(lines.len(), 1, "one line in the cart");
    let line = &lines[0];
    let line_name = text_in(line, ".cart-product-name").await;
    assert_eq!(line_name, name, "the cart holds the product");
    let quantity = text_in(line, "td.num").await;
    assert_eq!(quantity, "2", "the cart line's quantity");
    let total = text(client, "table.cart-table tr.total-row td").await;
    assert!(total.starts_with('$'), "total in dollars first: {total:?}");
    screenshot(client, shots, "03-cart.png").await;

    // Euros, from the header's currency form.
    change_currency_to_eur(client).await;
    assert_eq!(
        path(client).await,
        "/cart",
        "the currency form returns to the cart"
    );
    let chosen = client
        .find(Locator::Css("select#currency_code"))
        .await
        .expect("currency select")
        .prop("value")
        .await
        .expect("currency select value");
    assert_eq!(chosen.as_deref(), Some("EUR"));
    let line_total = text(client, "table.cart-table tbody tr td.num:last-child").await;
    assert!(
        line_total.contains('€'),
        "line total in euros: {line_total:?}"
    );
    let total = text(client, "table.cart-table tr.total-row td").await;
    assert!(total.contains('€'), "total in euros: {total:?}");
    screenshot(client, shots, "04-cart-eur.png").await;

    // The prefilled checkout form places the order.
    client
        .form(Locator::Css("form.checkout-form"))
        .await
        .expect("checkout form")
        .submit()
        .await
        .expect("place the order");
    wait_for(client, "dl.order-facts", "the order confirmation").await;
    assert_eq!(path(client).await, "/cart/checkout");
    assert_eq!(text(client, "h1").await, "Your order is complete!");
    let ids = client
        .find_all(Locator::Css("dl.order-facts dd code"))
        .await
        .expect("order and tracking ids");
    assert_eq!(ids.len(), 2, "an order id and a tracking id");
    let order_id = ids[0].text().await.expect("order id");
    let tracking_id = ids[1].text().await.expect("tracking id");
    assert!(is_uuid(&order_id), "order id is a UUID: {order_id:?}");
    assert!(
        shipping_api::is_tracking_id(&tracking_id),
        "tracking id: {tracking_id:?}"
    );
    let paid = text(client, "dl.order-facts .order-total dd").await;
    assert!(paid.contains('€'), "total paid in euros: {paid:?}");
    screenshot(client, shots, "05-confirmation.png").await;

    // The order emptied the cart.
    client.goto(&app.url("/cart")).await.expect("open the cart");
    wait_for(client, "section.empty-state", "the empty cart").await;
    let empty = text(client, "h1").await;
    assert!(empty.contains("empty"), "cart after the order: {empty:?}");

    // A path nothing serves gets the shop's 404 page.
    client
        .goto(&app.url("/no-such-page"))
        .await
        .expect("open an unknown page");
    wait_for(client, "section.error-state", "the 404 page").await;
    let missing = text(client, "h1").await;
    assert!(missing.contains("can't find"), "404 heading: {missing:?}");
    assert_eq!(text(client, ".error-code").await, "404");
    screenshot(client, shots, "06-not-found.png").await;
}

/// Picks EUR in the header. With JavaScript the select submits its form on change; should the
/// page still be in dollars after [`AUTO_SUBMIT_WAIT`], the test submits the form itself.
async fn change_currency_to_eur(client: &Client) {
    client
        .find(Locator::Css("form.currency-form select#currency_code"))
        .await
        .expect("currency select")
        .select_by_value("EUR")
        .await
        .expect("choose EUR");
    let auto = client
        .wait()
        .at_most(AUTO_SUBMIT_WAIT)
        .for_element(Locator::Css(EUR_CHOSEN))
        .await;
    match auto {
        Ok(_) => {}
        Err(CmdError::WaitTimeout) => {
            client
                .form(Locator::Css("form.currency-form"))
                .await
                .expect("currency form")
                .submit_direct()
                .await
                .expect("submit the currency form");
            wait_for(client, EUR_CHOSEN, "the page in euros").await;
        }
        Err(e) => panic!("waiting for the page in euros: {e}"),
    }
}

/// Fails with a pointer to the install script when the browser is not installed.
fn require_browser() {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(program).is_file(),
            "{program} is missing: {INSTALL_HINT} (this test never skips)"
        );
    }
}

/// A ChromeDriver process on a free local port; killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {INSTALL_HINT}"));
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        driver.wait_until_ready().await;
        driver
    }

    /// Polls `GET /status` until ChromeDriver says it is ready, for at most [`DRIVER_START`].
    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let status_url = format!("{}/status", self.url);
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some(exit) = self.child.try_wait().expect("chromedriver's state") {
                panic!("{CHROMEDRIVER} exited before it was ready ({exit}); {INSTALL_HINT}");
            }
            let ready = match http.get(&status_url).send().await {
                Ok(res) => res
                    .json::<Value>()
                    .await
                    .is_ok_and(|status| status["value"]["ready"].as_bool() == Some(true)),
                Err(_) => false,
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} did not report ready at {status_url} within {DRIVER_START:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new headless Chromium session with a profile of its own in `profile`.
async fn open_browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    builder
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session through {}: {e}", driver.url))
}

/// Waits until `css` matches on the current page (the page `what` has loaded).
async fn wait_for(client: &Client, css: &str, what: &str) -> Element {
    client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: nothing matches `{css}` after {PAGE_WAIT:?}: {e}"))
}

/// The text of the first element matching `css` on the page.
async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
}

/// The text of the first descendant of `parent` matching `css`.
async fn text_in(parent: &Element, css: &str) -> String {
    parent
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` in the element: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
}

/// The path of the page the browser shows.
async fn path(client: &Client) -> String {
    client
        .current_url()
        .await
        .expect("current url")
        .path()
        .to_owned()
}

/// Saves a screenshot of the current page as `name` in `dir`, and checks the file is a PNG of
/// more than 1 KB.
async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    let file = dir.join(name);
    std::fs::write(&file, &png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let saved = std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert!(
        saved.starts_with(PNG_MAGIC),
        "{} is not a PNG",
        file.display()
    );
    assert!(
        saved.len() > 1024,
        "{} is only {} bytes",
        file.display(),
        saved.len()
    );
}

/// Whether `s` is a UUID in its hyphenated text form.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}
