//! The operator page, `/_cleave/` (admins only): where each module runs, read from every
//! process of the deployment; each process's call edges with their calls, errors, rate, p50
//! and p99; its breakers; its outbox lag; its slowest recent requests with their trace ids.
//!
//! Each process reports itself at `/_cleave/process.json` (admins and modules of the
//! deployment); the page asks every process this one calls, through the same remote clients
//! as module calls (the admin's token relayed). The edge figures are read from the process's
//! own metrics (`cleave_module_call_duration_seconds`), not kept twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::client::{RemoteClient, RemoteRequest};
use crate::context::CallContext;
use crate::error::Failure;

/// Calls from one module to another, as this process made them since it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The calling module (`edge` for requests that came in over HTTP).
    pub caller: String,
    /// The called module.
    pub callee: String,
    /// `local` or `remote`.
    pub placement: String,
    /// Calls.
    pub calls: u64,
    /// Calls that did not succeed.
    pub errors: u64,
    /// Calls per second since the process started.
    pub per_sec: f64,
    /// Median duration, in milliseconds (from the histogram's buckets).
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
}

/// What a process says of itself at `/_cleave/process.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Its version.
    pub version: String,
    /// The modules it hosts.
    pub hosted: Vec<String>,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Its call edges.
    pub edges: Vec<Edge>,
    /// The breaker of each module it calls remotely (`closed`, `half-open`, `open`); of each
    /// replica (`catalog http://...`) where a module has several.
    pub breakers: BTreeMap<String, String>,
    /// Events in its outbox not yet relayed, and the age of the oldest, when it has one.
    pub outbox: Option<(u64, f64)>,
    /// Its slowest recent requests.
    pub slowest: Vec<crate::metrics::SlowRequest>,
}

/// What the operator page and report are made of, for one process.
pub struct Operator {
    version: &'static str,
    started: Instant,
    hosted: Vec<String>,
    /// Module, and where it runs as this process sees it.
    placement: Vec<(String, String)>,
    remotes: Vec<RemoteClient>,
    db: Option<DatabaseConnection>,
}

impl Operator {
    /// The operator view of a process: its `version`, what it hosts, where the rest runs, the
    /// clients of the modules it calls, its database.
    pub fn new(
        version: &'static str,
        plan: &crate::module::PlacementPlan,
        remotes: Vec<RemoteClient>,
        db: Option<DatabaseConnection>,
    ) -> Self {
        let placement = plan
            .entries()
            .iter()
            .map(|(spec, placement)| {
                let at = match placement {
                    crate::module::Placement::Hosted => "here".to_owned(),
                    crate::module::Placement::Remote(url) => {
                        crate::config::redact_url_password(url.as_str())
                    }
                    crate::module::Placement::Absent => "absent".to_owned(),
                };
                (spec.name.to_owned(), at)
            })
            .collect();
        Self {
            version,
            started: Instant::now(),
            hosted: plan.hosted().iter().map(|m| (*m).to_owned()).collect(),
            placement,
            remotes,
            db,
        }
    }

    /// This process's report.
    pub async fn report(&self) -> ProcessReport {
        let uptime = self.started.elapsed();
        let breakers = self
            .remotes
            .iter()
            .flat_map(|r| {
                // One row per replica where there are several, each with its own breaker.
                let replicas = r.replicas();
                if replicas.len() > 1 {
                    replicas
                        .into_iter()
                        .map(|(at, state)| {
                            (format!("{} {at}", r.module()), state.as_str().to_owned())
                        })
                        .collect()
                } else {
                    vec![(r.module().to_owned(), r.breaker().as_str().to_owned())]
                }
            })
            .collect();
        let outbox = match &self.db {
            Some(db) => crate::events::outbox_lag(db).await.ok(),
            None => None,
        };
        ProcessReport {
            version: self.version.to_owned(),
            hosted: self.hosted.clone(),
            uptime_secs: uptime.as_secs(),
            edges: crate::metrics::render().map_or_else(Vec::new, |text| edges(&text, uptime)),
            breakers,
            outbox,
            slowest: crate::metrics::slowest(),
        }
    }

    /// The reports of the other processes: one per base url this process calls.
    async fn others(&self, ctx: &CallContext) -> Vec<(String, Result<ProcessReport, String>)> {
        let mut seen = std::collections::BTreeSet::new();
        let asks = self
            .remotes
            .iter()
            .filter(|r| seen.insert(r.base_url().as_str().to_owned()))
            .map(|r| async move {
                let url = crate::config::redact_url_password(r.base_url().as_str());
                let req = RemoteRequest::new(
                    ctx.clone(),
                    crate::client::Method::GET,
                    REPORT_PATH.to_owned(),
                );
                let report = match r.call(req).await {
                    Ok(res) if res.status == 200 => serde_json::from_slice(&res.body)
                        .map_err(|e| format!("an unreadable report: {e}")),
                    Ok(res) => Err(format!("answered {}", res.status)),
                    Err(e) => Err(e.to_string()),
                };
                (url, report)
            });
        futures::future::join_all(asks).await
    }
}

/// Where a process reports itself.
const REPORT_PATH: &str = "/_cleave/process.json";

/// Serves `/_cleave/` and `/_cleave/process.json` from `operator`.
pub fn configure_operator(cfg: &mut web::ServiceConfig, operator: std::sync::Arc<Operator>) {
    let for_report = operator.clone();
    cfg.route(
        REPORT_PATH,
        web::get().to(move |req: HttpRequest| {
            let operator = for_report.clone();
            async move {
                admitted(&req, true).await?;
                Ok::<_, Failure>(HttpResponse::Ok().json(operator.report().await))
            }
        }),
    )
    .route(
        "/_cleave/",
        web::get().to(move |req: HttpRequest| {
            let operator = operator.clone();
            async move {
                let ctx = admitted(&req, false).await?;
                let here = operator.report().await;
                let others = operator.others(&ctx).await;
                Ok::<_, Failure>(
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .insert_header(("cache-control", "no-store"))
                        .body(page(&operator.placement, &here, &others)),
                )
            }
        }),
    );
}

/// The caller's context when it is an admin (by bearer token, or by the browser's token
/// cookie) or, with `modules`, a module of the deployment; otherwise 401 or 403.
async fn admitted(req: &HttpRequest, modules: bool) -> Result<CallContext, Failure> {
    let mut ctx = req
        .extensions()
        .get::<CallContext>()
        .cloned()
        .unwrap_or_else(CallContext::root);
    if ctx.principal().is_none()
        && let Some(cookie) = req.cookie(crate::auth::TOKEN_COOKIE)
        && let Some(auth) = req.app_data::<web::Data<crate::auth::Authenticator>>()
        && let Ok(principal) = auth.authenticate(cookie.value()).await
    {
        ctx = ctx.with_principal(principal);
    }
    let admin = ctx
        .principal()
        .is_some_and(crate::context::Principal::is_admin);
    let module = modules && ctx.caller_modules().is_some_and(|m| !m.is_empty());
    if admin || module {
        return Ok(ctx);
    }
    Err(Failure::from(if ctx.principal().is_none() {
        AuthError::Unauthenticated {
            reason: "the operator page needs an admin's access token".into(),
        }
    } else {
        AuthError::Forbidden {
            reason: "the operator page is for admins".into(),
        }
    }))
}

/// The edges of a process from its metrics text: per caller, callee and placement, the calls,
/// the errors, the rate over `uptime`, and p50/p99 interpolated in the buckets (as
/// Prometheus' `histogram_quantile` does).
fn edges(text: &str, uptime: Duration) -> Vec<Edge> {
    #[derive(Default)]
    struct Acc {
        calls: u64,
        errors: u64,
        buckets: BTreeMap<u64, u64>,
    }
    let bucket = format!("{}_bucket{{", crate::metrics::CALL_DURATION);
    let mut by_edge: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&bucket) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let key = (label("caller"), label("callee"), label("placement"));
        let le = label("le");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = count as u64;
        let acc = by_edge.entry(key).or_default();
        if le == "+Inf" {
            acc.calls += count;
            if label("outcome") != "ok" {
                acc.errors += count;
            }
        } else if let Ok(bound) = le.parse::<f64>() {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let micros = (bound * 1e6).round() as u64;
            *acc.buckets.entry(micros).or_default() += count;
        }
    }
    by_edge
        .into_iter()
        .map(|((caller, callee, placement), acc)| {
            #[allow(clippy::cast_precision_loss)]
            let per_sec = acc.calls as f64 / uptime.as_secs_f64().max(1.0);
            Edge {
                p50_ms: quantile(0.5, acc.calls, &acc.buckets),
                p99_ms: quantile(0.99, acc.calls, &acc.buckets),
                caller,
                callee,
                placement,
                calls: acc.calls,
                errors: acc.errors,
                per_sec,
            }
        })
        .collect()
}

/// The `q` quantile in milliseconds of `total` observations in cumulative `buckets` (upper
/// bound in µs → count at or below it), interpolated linearly within its bucket.
#[allow(clippy::cast_precision_loss)]
fn quantile(q: f64, total: u64, buckets: &BTreeMap<u64, u64>) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0u64, 0u64);
    for (&upper, &count) in buckets {
        if count as f64 >= rank {
            let within = (count - below).max(1) as f64;
            let at = (rank - below as f64) / within;
            return (lower as f64 + at * (upper - lower) as f64) / 1000.0;
        }
        (lower, below) = (upper, count);
    }
    // Above the highest bound: that bound is all that can be said.
    lower as f64 / 1000.0
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page: the placement, then one section per process.
fn page(
    placement: &[(String, String)],
    here: &ProcessReport,
    others: &[(String, Result<ProcessReport, String>)],
) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cleave operator</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}\
         .num{text-align:right}.open{color:#b00;font-weight:bold}.err{color:#b00}h2{margin-top:2em}</style>\
         </head><body><h1>Cleave operator</h1>",
    );
    html.push_str(
        "<h2 id=\"placement\">Placement</h2><table><tr><th>module</th><th>runs</th></tr>",
    );
    for (module, at) in placement {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(module),
            esc(at)
        );
    }
    html.push_str("</table>");
    process_section(&mut html, "this process", Ok(here));
    for (url, report) in others {
        process_section(&mut html, url, report.as_ref().map_err(String::as_str));
    }
    html.push_str("</body></html>");
    html
}

fn process_section(html: &mut String, name: &str, report: Result<&ProcessReport, &str>) {
    let _ = write!(html, "<section class=\"process\"><h2>{}</h2>", esc(name));
    let report = match report {
        Ok(report) => report,
        Err(why) => {
            let _ = write!(
                html,
                "<p class=\"err\">not reachable: {}</p></section>",
                esc(why)
            );
            return;
        }
    };
    let _ = write!(
        html,
        "<p>version {} · up {} s · hosts <b>{}</b></p>",
        esc(&report.version),
        report.uptime_secs,
        esc(&report.hosted.join(", "))
    );
    html.push_str(
        "<table class=\"edges\"><tr><th>caller</th><th>callee</th><th>placement</th><th>calls</th>\
         <th>errors</th><th>calls/s</th><th>p50 ms</th><th>p99 ms</th></tr>",
    );
    for e in &report.edges {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td></tr>",
            esc(&e.caller),
            esc(&e.callee),
            esc(&e.placement),
            e.calls,
            e.errors,
            e.per_sec,
            e.p50_ms,
            e.p99_ms
        );
    }
    html.push_str("</table>");
    if !report.breakers.is_empty() {
        html.push_str("<table class=\"breakers\"><tr><th>breaker</th><th>state</th></tr>");
        for (module, state) in &report.breakers {
            let class = if state == crate::resilience::BreakerState::Closed.as_str() {
                ""
            } else {
                "open"
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"{class}\">{}</td></tr>",
                esc(module),
                esc(state)
            );
        }
        html.push_str("</table>");
    }
    if let Some((pending, oldest)) = report.outbox {
        let _ = write!(
            html,
            "<p class=\"outbox\">outbox: {pending} pending, oldest {oldest:.1} s</p>"
        );
    }
    html.push_str(
        "<table class=\"slowest\"><tr><th>slowest recent requests</th><th>status</th><th>ms</th>\
         <th>trace id</th><th>s ago</th></tr>",
    );
    for s in &report.slowest {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.1}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            esc(&s.route),
            s.status,
            s.ms,
            esc(&s.trace_id),
            s.ago_secs
        );
    }
    html.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_summed_per_caller_callee_and_placement_with_quantiles_from_the_buckets() {
        let text = "\
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"ok\",code=\"\",le=\"0.001\"} 50
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"ok\",code=\"\",le=\"0.002\"} 90
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"ok\",code=\"\",le=\"+Inf\"} 90
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"error\",code=\"catalog.unavailable\",le=\"0.001\"} 0
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"error\",code=\"catalog.unavailable\",le=\"0.002\"} 10
cleave_module_call_duration_seconds_bucket{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"error\",code=\"catalog.unavailable\",le=\"+Inf\"} 10
cleave_module_call_duration_seconds_count{caller=\"storefront\",callee=\"catalog\",operation=\"catalog.get_product\",placement=\"remote\",outcome=\"ok\",code=\"\"} 90
cleave_http_request_duration_seconds_bucket{method=\"GET\",route=\"/\",status=\"200\",le=\"+Inf\"} 7
";
        let edges = edges(text, Duration::from_secs(10));
        assert_eq!(edges.len(), 1);
        let e = &edges[0];
        assert_eq!(
            (e.caller.as_str(), e.callee.as_str(), e.placement.as_str()),
            ("storefront", "catalog", "remote")
        );
        assert_eq!((e.calls, e.errors), (100, 10));
        assert!((e.per_sec - 10.0).abs() < 1e-9);
        // 50 of 100 at or below 1 ms: the median is 1 ms; the 99th lies in (1, 2] ms.
        assert!((e.p50_ms - 1.0).abs() < 1e-9, "{}", e.p50_ms);
        assert!(e.p99_ms > 1.9 && e.p99_ms <= 2.0, "{}", e.p99_ms);
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let report = ProcessReport {
            version: "<v>".into(),
            hosted: vec!["catalog".into()],
            uptime_secs: 1,
            edges: Vec::new(),
            breakers: BTreeMap::new(),
            outbox: None,
            slowest: Vec::new(),
        };
        let html = page(
            &[("catalog".into(), "here".into())],
            &report,
            &[("http://x".into(), Err("<script>".into()))],
        );
        assert!(html.contains("&lt;v&gt;") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
