//! An open-loop load generator for `scripts/bench-shed.sh`: sends GET `url` at a fixed rate
//! for a while, whether or not earlier requests have been answered (so an overloaded server
//! sees the load grow, as it would from real users), then prints one JSON line: requests
//! offered, answered by status, failed, and the p50/p99 latency of the 2xx answers; and, to
//! tell whether the tool itself kept up, the p99 of how late it sent requests against their
//! schedule (and the share of a CPU it used: all of it, since it paces its sends by polling
//! the clock, see `send_at`).
//!
//! `bench-open-loop <url> <requests per second> <seconds> [<header line>]` (plain `http://`
//! only; the header line, e.g. `Cookie: a=b`, goes with every request)
//!
//! It must stay far cheaper than the server it loads, or it measures itself: requests go
//! over plain keep-alive connections it keeps (a new one only when none is idle), written
//! from one pre-rendered request and read with `httparse`, on one thread. A request's
//! latency counts from when it was sent (with a connection at hand); how late sends were
//! against their schedule is reported beside it, so a tool that fell behind (and so sent
//! less than it claims) shows.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "latency.rs"]
mod latency;

/// CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_used() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // Linux reports in USER_HZ, 100 a second on every architecture it runs on.
    Duration::from_millis(ticks * 10)
}

/// How long a request may take before it counts as failed.
const GIVE_UP: Duration = Duration::from_secs(10);

/// One keep-alive connection and what it has read past the last answer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends `request` and reads its answer; the status, and whether the connection may
    /// carry another request.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = res
                .parse(&self.buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                let status = res.code.unwrap_or(0);
                let header = |name: &str| {
                    res.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value)
                };
                let length: usize = header("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                    .ok_or_else(|| std::io::Error::other("an answer without content-length"))?;
                let reusable =
                    header("connection").is_none_or(|v| !v.eq_ignore_ascii_case(b"close"));
                let total = head + length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                return Ok((status, reusable));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// One request: on an idle connection or a new one, its status (`None`: no answer within
/// [`GIVE_UP`]); the connection goes back to `idle` when it can carry another.
async fn one(addr: &str, request: &[u8], idle: &RefCell<Vec<Conn>>) -> Option<u16> {
    let exchange = async {
        let pooled = idle.borrow_mut().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect(addr).await.ok()?;
                stream.set_nodelay(true).ok()?;
                Conn {
                    stream,
                    buf: Vec::with_capacity(16 * 1024),
                }
            }
        };
        let (status, reusable) = conn.exchange(request).await.ok()?;
        if reusable {
            idle.borrow_mut().push(conn);
        }
        Some(status)
    };
    tokio::time::timeout(GIVE_UP, exchange).await.ok().flatten()
}

/// How long before a send the tool stops sleeping and keeps polling the clock: tokio's timer
/// fires at whole milliseconds.
const PACE_BY_POLLING: Duration = Duration::from_millis(2);

/// Waits until `due`. A timer alone would send every request due within the same millisecond
/// at once (42 at a time at 42,000 a second): a burst that the server's queue, not its
/// policy, makes the last ones wait for, where real users' requests arrive spread out. So
/// the last stretch before a send yields to the tool's other tasks (reading answers) and looks
/// at the clock again, until the send is due: the tool's CPU is busy the whole run, and how
/// late its sends were (reported) is what tells whether it kept up.
async fn send_at(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > PACE_BY_POLLING {
            tokio::time::sleep_until((due - PACE_BY_POLLING).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

// One thread: the tool is pinned to one CPU, where more threads would only contend.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, rate, secs, header) = match args.as_slice() {
        [_, url, rate, secs] => (url, rate, secs, String::new()),
        [_, url, rate, secs, header] => (url, rate, secs, format!("{header}\r\n")),
        _ => {
            eprintln!("usage: bench-open-loop <url> <requests per second> <seconds> [<header>]");
            std::process::exit(2);
        }
    };
    let rate: u32 = rate.parse().expect("requests per second");
    let secs: u64 = secs.parse().expect("seconds");
    let rest = url
        .strip_prefix("http://")
        .expect("a plain http:// url (the tool speaks no TLS)");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let request: Rc<[u8]> =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n{header}\r\n")
            .into_bytes()
            .into();
    let addr: Rc<str> = addr.into();
    let idle = Rc::new(RefCell::new(Vec::<Conn>::new()));
    let results = Rc::new(RefCell::new(Vec::<(Option<u16>, Duration)>::new()));

    let local = tokio::task::LocalSet::new();
    let (offered, late, cpu_share) = local
        .run_until(async {
            let period = Duration::from_secs(1) / rate.max(1);
            let (start, cpu_at_start) = (Instant::now(), cpu_used());
            let end = start + Duration::from_secs(secs);
            let mut offered = 0u32;
            let mut late = Vec::new();
            let mut tasks = Vec::new();
            while Instant::now() < end {
                let due = start + period * offered;
                send_at(due).await;
                late.push(Instant::now().saturating_duration_since(due));
                offered += 1;
                let (addr, request, idle, results) =
                    (addr.clone(), request.clone(), idle.clone(), results.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let sent = Instant::now();
                    let status = one(&addr, &request, &idle).await;
                    results.borrow_mut().push((status, sent.elapsed()));
                }));
            }
            let cpu_share =
                (cpu_used() - cpu_at_start).as_secs_f64() / start.elapsed().as_secs_f64();
            for task in tasks {
                let _ = task.await;
            }
            late.sort();
            (offered, late, cpu_share)
        })
        .await;

    let mut ok = Vec::new();
    let mut by_status = std::collections::BTreeMap::<String, u64>::new();
    for &(status, took) in results.borrow().iter() {
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
            "tool_cpu_share": (cpu_share * 100.0).round() / 100.0,
            "tool_late_p99_ms": latency::percentile_ms(&late, 0.99),
        })
    );
}
