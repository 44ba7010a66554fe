//! An open-loop load generator for `scripts/bench-shed.sh`: sends GET `url` at a fixed rate
//! for a while, whether or not earlier requests have been answered (so an overloaded server
//! sees the load grow, as it would from real users), then prints one JSON line: requests
//! offered, answered by status, failed, and the p50/p99 latency of the 2xx answers.
//!
//! `bench-open-loop <url> <requests per second> <seconds>`

use std::time::{Duration, Instant};

#[path = "latency.rs"]
mod latency;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, rate, secs] = args.as_slice() else {
        eprintln!("usage: bench-open-loop <url> <requests per second> <seconds>");
        std::process::exit(2);
    };
    let rate: u32 = rate.parse().expect("requests per second");
    let secs: u64 = secs.parse().expect("seconds");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4096)
        .build()
        .expect("client");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<u16>, Duration)>();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut offered = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        offered += 1;
        let (client, tx, url) = (client.clone(), tx.clone(), url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let status = match client.get(&url).send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let _ = res.bytes().await;
                    Some(status)
                }
                Err(_) => None,
            };
            let _ = tx.send((status, started.elapsed()));
        });
    }
    drop(tx);
    let mut ok = Vec::new();
    let mut by_status = std::collections::BTreeMap::<String, u64>::new();
    while let Some((status, took)) = rx.recv().await {
        let key = status.map_or_else(|| "failed".to_owned(), |s| s.to_string());
        *by_status.entry(key).or_default() += 1;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            ok.push(took);
        }
    }
    ok.sort();
    let pct = |p: f64| latency::percentile_ms(&ok, p);
    println!(
        "{}",
        serde_json::json!({
            "offered": offered,
            "by_status": by_status,
            "ok_p50_ms": pct(0.50),
            "ok_p99_ms": pct(0.99),
        })
    );
}
