//! Retries and the circuit breaker of the remote-call pipeline, against a real socket whose
//! answers each test scripts (a status, a `Retry-After`, or a connection closed without an
//! answer), counting the requests that reach it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cleave_kernel::call::{HttpMethod, Operation, Repeat};
use cleave_kernel::client::{
    Method, RemoteClient, RemoteError, RemoteRequest, RemoteSettings, Url,
};
use cleave_kernel::error::KernelError;
use cleave_kernel::resilience::{BreakerSettings, BreakerState, RetrySettings};
use cleave_kernel::{ApiError, CallContext, contract_error};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

mod support;
use support::{call, op};

/// Safe to repeat.
const READ: Operation = op("probe.read", HttpMethod::Get, Repeat::ReadOnly);
/// Never repeated once sent.
const PLACE: Operation = op("probe.place", HttpMethod::Post, Repeat::Once);

/// What the scripted server does with its n-th request (from 0).
#[derive(Clone, Copy)]
enum Act {
    /// Answers this status (a JSON body), with `Retry-After` if given.
    Answer(u16, Option<u64>),
    /// Answers this status with a problem of this code, with `Retry-After` if given.
    Problem(u16, &'static str, Option<u64>),
    /// Closes the connection without answering.
    Close,
    /// Never answers (the connection stays open).
    Stall,
    /// Answers 200 with a JSON string of about this many bytes, its length declared (or
    /// not: chunked).
    Big(usize, bool),
}

/// The errors of a contract whose unavailable variant passes a dependency's failure on.
#[contract_error(module = "probe")]
enum ProbeError {}

/// A server on a random port that reads each request and does what `script` says for it.
struct Scripted {
    url: Url,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url =
            Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
        let requests = Arc::new(AtomicUsize::new(0));
        let (count, script) = (requests.clone(), Arc::new(script));
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (count, script) = (count.clone(), script.clone());
                tokio::spawn(async move {
                    let mut sock = BufReader::new(sock);
                    loop {
                        // The request head, then its body (Content-Length).
                        let mut length = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if sock.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        if sock.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        let (status, retry_after, kind, body) = match script(n) {
                            Act::Close => return,
                            Act::Stall => return std::future::pending().await,
                            Act::Big(size, chunked) => {
                                let _ = write_big(sock.get_mut(), size, chunked).await;
                                continue;
                            }
                            Act::Answer(status, retry_after) => {
                                (status, retry_after, "json", "{}".to_owned())
                            }
                            Act::Problem(status, code, retry_after) => (
                                status,
                                retry_after,
                                "problem+json",
                                serde_json::json!({
                                    "type": format!("urn:cleave:problem:{code}"),
                                    "title": "X",
                                    "status": status,
                                    "code": code,
                                })
                                .to_string(),
                            ),
                        };
                        let extra = retry_after
                            .map(|s| format!("Retry-After: {s}\r\n"))
                            .unwrap_or_default();
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/{kind}\r\n\
                             Content-Length: {}\r\n{extra}\r\n{body}",
                            body.len()
                        );
                        if sock.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Writes a 200 answer whose body is a JSON string of `size` bytes and two quotes.
async fn write_big(
    sock: &mut tokio::net::TcpStream,
    size: usize,
    chunked: bool,
) -> std::io::Result<()> {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", size + 2)
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    let piece = vec![b'x'; 64 * 1024];
    let mut parts = vec![b"\"".to_vec()];
    parts.extend(std::iter::repeat_n(piece, size / (64 * 1024)));
    parts.push(b"\"".to_vec());
    for part in parts {
        if chunked {
            sock.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                .await?;
            sock.write_all(&part).await?;
            sock.write_all(b"\r\n").await?;
        } else {
            sock.write_all(&part).await?;
        }
    }
    if chunked {
        sock.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A breaker that never opens, for the tests of retries alone.
fn never_open() -> BreakerSettings {
    BreakerSettings {
        consecutive: u32::MAX,
        failure_percent: 101,
        ..BreakerSettings::default()
    }
}

fn client(url: &Url, retry: RetrySettings, breaker: BreakerSettings) -> RemoteClient {
    RemoteClient::new(
        "probe",
        url.clone(),
        &RemoteSettings {
            retry,
            breaker,
            ..RemoteSettings::default()
        },
    )
    .expect("client")
}

/// A raw request of [`PLACE`] (what the pipeline says, before a contract's error mapping).
fn placing() -> RemoteRequest {
    RemoteRequest {
        op: Some(&PLACE),
        ..RemoteRequest::new(CallContext::root(), Method::POST, "/thing".into())
    }
}

#[tokio::test]
async fn a_safe_call_is_tried_again_after_503s_and_succeeds() {
    let server = Scripted::start(|n| Act::Answer(if n < 2 { 503 } else { 200 }, None)).await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    call(&remote, &READ).await.expect("the third try succeeds");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn a_call_not_safe_to_repeat_is_sent_once_whether_it_got_503_or_no_answer() {
    let server = Scripted::start(|_| Act::Answer(503, None)).await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    let err = call(&remote, &PLACE).await.expect_err("503");
    assert!(matches!(err, KernelError::NotReady { .. }), "{err:?}");
    assert_eq!(server.requests(), 1);

    let server = Scripted::start(|_| Act::Close).await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    let lost = remote.call(placing()).await.expect_err("no answer");
    assert!(matches!(lost, RemoteError::AnswerLost { .. }), "{lost:?}");
    assert_eq!(server.requests(), 1, "an answer lost is not sent again");
    // The same failure for a read is tried again, up to the attempts.
    call(&remote, &READ).await.expect_err("no answer");
    assert_eq!(server.requests(), 1 + 3);
}

#[tokio::test]
async fn a_request_never_sent_is_reported_as_such_and_may_be_tried_again() {
    // Port 1 (tcpmux): privileged, nothing listens there.
    let url = Url::parse("http://127.0.0.1:1").expect("url");
    let remote = client(&url, RetrySettings::default(), never_open());
    let err = remote.call(placing()).await.expect_err("refused");
    assert!(matches!(err, RemoteError::NotSent { .. }), "{err:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_deadline_leaves_the_503_as_it_is() {
    let server = Scripted::start(|_| Act::Answer(503, Some(30))).await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    call(&remote, &READ).await.expect_err("503");
    assert_eq!(
        server.requests(),
        1,
        "a 30 s Retry-After does not fit in 5 s"
    );
}

#[tokio::test]
async fn retries_stay_within_the_budget_when_a_dependency_keeps_failing() {
    let server = Scripted::start(|_| Act::Answer(503, None)).await;
    let retry = RetrySettings {
        budget_percent: 10.0,
        budget_min_per_sec: 1,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
        ..RetrySettings::default()
    };
    let remote = client(&server.url, retry, never_open());
    let calls = 200;
    for _ in 0..calls {
        call(&remote, &READ).await.expect_err("503");
    }
    let reached = server.requests();
    // 10% of the calls plus the floor (1 per second over the 10 s window).
    assert!(reached > calls, "some calls were retried: {reached}");
    assert!(
        reached <= calls + calls / 10 + 10 + 1,
        "{reached} requests for {calls} calls"
    );
}

#[tokio::test]
async fn the_breaker_opens_after_five_failures_in_a_row_and_then_fails_at_once() {
    let server = Scripted::start(|_| Act::Answer(500, None)).await;
    let remote = client(
        &server.url,
        RetrySettings::default(),
        BreakerSettings::default(),
    );
    for _ in 0..5 {
        call(&remote, &PLACE).await.expect_err("500");
    }
    assert_eq!(remote.breaker(), BreakerState::Open);
    let err = remote
        .call(RemoteRequest::new(
            CallContext::root(),
            Method::GET,
            "/thing".into(),
        ))
        .await
        .expect_err("open");
    assert!(matches!(err, RemoteError::CircuitOpen { .. }), "{err:?}");
    // To the caller: 503 with Retry-After, the rest of the open period (5 s and up to 10%
    // jitter) rounded up to whole seconds, on the wire too.
    let err = probe_call(&remote, &PLACE).await.expect_err("open");
    assert_eq!((err.code(), err.status_u16()), ("probe.unavailable", 503));
    let secs = err.retry_after_secs().expect("Retry-After");
    assert!((5..=6).contains(&secs), "{err:?}");
    let res = actix_web::ResponseError::error_response(&cleave_kernel::Failure::from(err));
    assert_eq!(
        res.headers().get("retry-after").expect("the header"),
        &secs.to_string()
    );
    // A safe call is not retried into an open breaker either.
    call(&remote, &READ).await.expect_err("open");
    assert_eq!(
        server.requests(),
        5,
        "nothing reaches the target while open"
    );
}

#[tokio::test]
async fn the_breaker_opens_on_a_failure_rate_and_closes_when_a_probe_succeeds() {
    // Every other call fails: never five in a row, but half of the window.
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = healthy.clone();
    let server = Scripted::start(move |n| {
        if up.load(Ordering::SeqCst) || n % 2 == 0 {
            Act::Answer(200, None)
        } else {
            Act::Answer(502, None)
        }
    })
    .await;
    let breaker = BreakerSettings {
        // Probe at once: the test need not wait for the open period.
        open_for: Duration::ZERO,
        ..BreakerSettings::default()
    };
    let no_retry = RetrySettings {
        attempts: 1,
        ..RetrySettings::default()
    };
    let remote = client(&server.url, no_retry, breaker);
    let mut outcomes = Vec::new();
    while remote.breaker() == BreakerState::Closed && outcomes.len() < 20 {
        outcomes.push(call(&remote, &READ).await.is_ok());
    }
    assert_eq!(remote.breaker(), BreakerState::Open, "{outcomes:?}");
    assert_eq!(
        outcomes.len(),
        10,
        "opened once the window held 10 calls, half failed"
    );
    // The open period (zero here) over, one probe goes; it succeeds and closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    call(&remote, &READ).await.expect("the probe");
    assert_eq!(remote.breaker(), BreakerState::Closed);
    assert_eq!(server.requests(), 11);
}

/// A call of `op` as the probe contract's error (what a module's client gives its caller).
async fn probe_call(remote: &RemoteClient, op: &'static Operation) -> Result<(), ProbeError> {
    remote
        .op(
            op,
            &CallContext::root().with_timeout(Duration::from_secs(5)),
        )
        .fetch::<serde_json::Value, ProbeError>()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_callees_kernel_failures_reach_the_caller_as_themselves() {
    let server = Scripted::start(|n| match n {
        0 => Act::Problem(429, "cleave.rate_limited", Some(7)),
        1 => Act::Problem(504, "cleave.timeout", None),
        2 => Act::Problem(413, "cleave.payload_too_large", None),
        _ => Act::Problem(500, "cleave.internal", None),
    })
    .await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    let expected = [
        ("cleave.rate_limited", 429, Some(7)),
        ("cleave.timeout", 504, None),
        ("cleave.payload_too_large", 413, None),
        // The callee's bug is not the caller's: the dependency is unavailable.
        ("probe.unavailable", 503, None),
    ];
    for (code, status, retry_after) in expected {
        let err = probe_call(&remote, &PLACE).await.expect_err(code);
        assert_eq!(
            (err.code(), err.status_u16(), err.retry_after_secs()),
            (code, status, retry_after),
            "{err:?}"
        );
    }
    assert_eq!(
        server.requests(),
        4,
        "a call not safe to repeat is sent once"
    );
}

#[tokio::test]
async fn a_deadline_that_passes_during_a_call_is_a_504() {
    let server = Scripted::start(|_| Act::Stall).await;
    let remote = client(&server.url, RetrySettings::default(), never_open());
    let err = remote
        .op(
            &PLACE,
            &CallContext::root().with_timeout(Duration::from_millis(100)),
        )
        .send::<ProbeError>()
        .await
        .expect_err("stalled");
    assert_eq!((err.code(), err.status_u16()), ("cleave.timeout", 504));
}

#[tokio::test]
async fn a_full_bulkhead_refuses_calls_at_once_and_admits_them_again_when_calls_end() {
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let server = Scripted::start(move |n| {
        arrived.send(n).expect("the test listens");
        if n < 2 {
            Act::Stall
        } else {
            Act::Answer(200, None)
        }
    })
    .await;
    let remote = RemoteClient::new(
        "probe",
        server.url.clone(),
        &RemoteSettings {
            max_concurrency: 2,
            ..RemoteSettings::default()
        },
    )
    .expect("client");
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let remote = remote.clone();
            tokio::spawn(async move { probe_call(&remote, &PLACE).await })
        })
        .collect();
    for _ in 0..2 {
        arrivals.recv().await.expect("a stalled call arrives");
    }
    let err = probe_call(&remote, &READ)
        .await
        .expect_err("the bulkhead is full");
    assert_eq!(
        (err.code(), err.status_u16(), err.retry_after_secs()),
        ("probe.unavailable", 503, Some(1)),
        "{err:?}"
    );
    assert_eq!(server.requests(), 2, "the refused call never left");
    for call in stalled {
        call.abort();
        let _ = call.await;
    }
    probe_call(&remote, &READ)
        .await
        .expect("room again once the calls in flight ended");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_refused_while_it_streams() {
    let mib = 1024 * 1024;
    let server = Scripted::start(move |n| match n {
        0 => Act::Big(2 * mib, false),
        1 => Act::Big(2 * mib, true),
        _ => Act::Big(mib / 2, true),
    })
    .await;
    let remote = RemoteClient::new(
        "probe",
        server.url.clone(),
        &RemoteSettings {
            max_answer_bytes: mib,
            breaker: never_open(),
            ..RemoteSettings::default()
        },
    )
    .expect("client");
    for framing in ["declared", "chunked"] {
        let err = remote.call(placing()).await.expect_err(framing);
        assert!(
            matches!(&err, RemoteError::Protocol { reason, .. } if reason.contains("larger than")),
            "{framing}: {err:?}"
        );
        let as_api: ProbeError = err.into_api_error();
        assert_eq!(as_api.code(), "probe.unavailable");
    }
    let fine = remote.call(placing()).await.expect("under the cap");
    assert_eq!(fine.body.len(), mib / 2 + 2);
}
