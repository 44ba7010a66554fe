//! Online Boutique's shoppers for `scripts/bench-mix.sh`: the task mix of Boutique's own load
//! generator (its weights: home page 1, set currency 2, browse a product 10, add to cart 2,
//! view the cart 3, check out 1; its routes and forms; each shopper with its own cookies,
//! starting at the home page), written here for Cleave. Tasks start at a fixed rate whether
//! or not earlier ones have finished (open loop), each by a shopper drawn at random; a
//! shopper runs one task at a time. Prints one JSON line: tasks, requests, failures (an error
//! or a status of 400 and up), and the p50/p99 latency of the requests; and the same of the
//! checkout requests alone (`POST /cart/checkout`), with their statuses.
//!
//! `bench-mix <base url> <tasks per second> <seconds> [<CA PEM for https>]`; with
//! `BENCH_MIX_ONLY=checkout` every task is a checkout (for the breaker drill).
//!
//! Redirects are followed by hand, so that a cookie set by a redirect is kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cleave_domain::{Address, BOUTIQUE_PRODUCT_IDS};
use tokio::sync::Mutex;

#[path = "latency.rs"]
mod latency;

const CURRENCIES: [&str; 6] = ["EUR", "USD", "JPY", "CAD", "GBP", "TRY"];
const SHOPPERS: usize = 50;

/// Boutique's tasks and their weights.
#[derive(Debug, Clone, Copy)]
enum Task {
    Index,
    SetCurrency,
    BrowseProduct,
    AddToCart,
    ViewCart,
    Checkout,
}

const MIX: [(Task, u32); 6] = [
    (Task::Index, 1),
    (Task::SetCurrency, 2),
    (Task::BrowseProduct, 10),
    (Task::AddToCart, 2),
    (Task::ViewCart, 3),
    (Task::Checkout, 1),
];

/// One request's outcome.
#[derive(Clone, Copy)]
struct Outcome {
    took: Duration,
    /// Its status; `None` when no whole answer came.
    status: Option<u16>,
    /// Whether it was a checkout (`POST /cart/checkout`).
    checkout: bool,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 400)
    }
}

struct Shopper {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    started: bool,
}

impl Shopper {
    /// One request (and the redirects it leads to, each counted), keeping cookies.
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let checkout = method == reqwest::Method::POST && path == "/cart/checkout";
        let (mut method, mut path) = (method, path.to_owned());
        for hop in 0..5 {
            let outcome = |took, status| Outcome {
                took,
                status,
                checkout: checkout && hop == 0,
            };
            let started = Instant::now();
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self
                    .cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                req = req.header(reqwest::header::COOKIE, jar.join("; "));
            }
            if method == reqwest::Method::POST {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                req = req
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body);
            }
            let res = match req.send().await {
                Ok(res) => res,
                Err(_) => {
                    outcomes.push(outcome(started.elapsed(), None));
                    return outcomes;
                }
            };
            for set in res.headers().get_all(reqwest::header::SET_COOKIE) {
                let raw = set.to_str().unwrap_or_default();
                let pair = raw.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    self.cookies
                        .insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
            let status = res.status();
            let location = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let whole = res.bytes().await.is_ok();
            outcomes.push(outcome(started.elapsed(), whole.then_some(status.as_u16())));
            match location {
                Some(next) if status.is_redirection() => {
                    path = next.strip_prefix(&self.base).unwrap_or(&next).to_owned();
                    method = reqwest::Method::GET;
                }
                _ => return outcomes,
            }
        }
        outcomes
    }

    async fn run(&mut self, task: Task) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        if !self.started {
            // Boutique's shoppers begin at the home page.
            self.started = true;
            outcomes.extend(self.send(reqwest::Method::GET, "/", &[]).await);
        }
        let product = BOUTIQUE_PRODUCT_IDS[fastrand::usize(..BOUTIQUE_PRODUCT_IDS.len())];
        match task {
            Task::Index => outcomes.extend(self.send(reqwest::Method::GET, "/", &[]).await),
            Task::SetCurrency => {
                let code = CURRENCIES[fastrand::usize(..CURRENCIES.len())].to_owned();
                outcomes.extend(
                    self.send(
                        reqwest::Method::POST,
                        "/setCurrency",
                        &[("currency_code", code)],
                    )
                    .await,
                );
            }
            Task::BrowseProduct => {
                outcomes.extend(
                    self.send(reqwest::Method::GET, &format!("/product/{product}"), &[])
                        .await,
                );
            }
            Task::AddToCart => outcomes.extend(self.add_to_cart(product).await),
            Task::ViewCart => outcomes.extend(self.send(reqwest::Method::GET, "/cart", &[]).await),
            Task::Checkout => {
                outcomes.extend(self.add_to_cart(product).await);
                let address = Address::example();
                let form = [
                    ("email", "someone@example.com".to_owned()),
                    ("street_address", address.street_address),
                    ("zip_code", address.zip_code),
                    ("city", address.city),
                    ("state", address.state),
                    ("country", address.country),
                    ("credit_card_number", "4432801561520454".to_owned()),
                    ("credit_card_expiration_month", "1".to_owned()),
                    ("credit_card_expiration_year", "2039".to_owned()),
                    ("credit_card_cvv", "672".to_owned()),
                ];
                outcomes.extend(
                    self.send(reqwest::Method::POST, "/cart/checkout", &form)
                        .await,
                );
            }
        }
        outcomes
    }

    async fn add_to_cart(&mut self, product: &str) -> Vec<Outcome> {
        let mut outcomes = self
            .send(reqwest::Method::GET, &format!("/product/{product}"), &[])
            .await;
        let quantity = [1, 2, 3, 4, 5, 10][fastrand::usize(..6)].to_string();
        outcomes.extend(
            self.send(
                reqwest::Method::POST,
                "/cart",
                &[("product_id", product.to_owned()), ("quantity", quantity)],
            )
            .await,
        );
        outcomes
    }
}

fn draw(only_checkout: bool) -> Task {
    if only_checkout {
        return Task::Checkout;
    }
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut at = fastrand::u32(..total);
    for (task, weight) in MIX {
        if at < weight {
            return task;
        }
        at -= weight;
    }
    Task::BrowseProduct
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, rate, secs, ca) = match args.as_slice() {
        [_, base, rate, secs] => (base, rate, secs, None),
        [_, base, rate, secs, ca] => (base, rate, secs, Some(ca)),
        _ => {
            eprintln!("usage: bench-mix <base url> <tasks per second> <seconds> [<CA PEM>]");
            std::process::exit(2);
        }
    };
    let rate: u32 = rate.parse().expect("tasks per second");
    let only_checkout = match std::env::var("BENCH_MIX_ONLY").as_deref() {
        Ok("checkout") => true,
        Ok(other) => panic!("BENCH_MIX_ONLY={other}: only `checkout` is known"),
        Err(_) => false,
    };
    let secs: u64 = secs.parse().expect("seconds");
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(SHOPPERS);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("CA file");
        for cert in reqwest::Certificate::from_pem_bundle(&pem).expect("CA PEM") {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = builder.build().expect("client");
    let base = base.trim_end_matches('/').to_owned();
    let shoppers: Vec<Arc<Mutex<Shopper>>> = (0..SHOPPERS)
        .map(|_| {
            Arc::new(Mutex::new(Shopper {
                http: http.clone(),
                base: base.clone(),
                cookies: BTreeMap::new(),
                started: false,
            }))
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Outcome>>();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        tasks += 1;
        let shopper = shoppers[fastrand::usize(..SHOPPERS)].clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let outcomes = shopper.lock().await.run(draw(only_checkout)).await;
            let _ = tx.send(outcomes);
        });
    }
    drop(tx);
    let mut all = Vec::new();
    let mut checkouts = Vec::new();
    while let Some(outcomes) = rx.recv().await {
        for outcome in outcomes {
            if outcome.checkout {
                checkouts.push(outcome);
            }
            all.push(outcome);
        }
    }
    let mut summary = summarize(&mut all);
    summary["tasks"] = tasks.into();
    summary["checkout"] = summarize(&mut checkouts);
    println!("{summary}");
}

/// Requests, failures, statuses and the p50/p99 latency of `outcomes`.
fn summarize(outcomes: &mut [Outcome]) -> serde_json::Value {
    outcomes.sort_by_key(|o| o.took);
    let latencies: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
    let mut by_status = BTreeMap::<String, u64>::new();
    for o in outcomes.iter() {
        let key = o
            .status
            .map_or_else(|| "failed".to_owned(), |s| s.to_string());
        *by_status.entry(key).or_default() += 1;
    }
    let pct = |p: f64| (latency::percentile_ms(&latencies, p) * 10.0).round() / 10.0;
    serde_json::json!({
        "requests": outcomes.len(),
        "failures": outcomes.iter().filter(|o| o.failed()).count(),
        "by_status": by_status,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    })
}
