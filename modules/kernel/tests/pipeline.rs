//! The remote-call pipeline against real sockets: context propagation, deadlines, and how
//! failures surface.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use cleave_kernel::CallContext;
use cleave_kernel::call::{HttpMethod, Operation, Repeat};
use cleave_kernel::client::{
    CALL_HEADER, CallMarks, Method, RemoteClient, RemoteError, RemoteRequest, RemoteSettings, Url,
};
use cleave_kernel::error::{ApiError, KernelError};
use cleave_kernel::http::{HttpLimits, ServerStack};
use cleave_kernel::testing::TestServer;

/// A read of `path` on the probe server, named `probe.<name>`.
const fn read(id: &'static str, path: &'static str) -> Operation {
    Operation {
        module: "probe",
        name: id,
        id,
        method: HttpMethod::Get,
        path,
        repeat: Repeat::ReadOnly,
        cached: false,
        access: &[cleave_kernel::call::Access::Anyone],
        owner: None,
        errors: &[],
        summary: "",
    }
}

const ECHO: Operation = read("probe.echo", "/echo");
const BARE_500: Operation = read("probe.bare_500", "/bare-500");
const PROBLEM: Operation = read("probe.problem", "/problem");
const CHARGE: Operation = Operation {
    method: HttpMethod::Post,
    repeat: Repeat::Keyed,
    ..read("probe.charge", "/echo")
};

/// A raw request to `path`, outside any contract.
fn raw(ctx: &CallContext, path: &str) -> RemoteRequest {
    RemoteRequest::new(ctx.clone(), Method::GET, path.to_owned())
}

fn client(url: Url, timeout: Duration) -> RemoteClient {
    RemoteClient::new(
        "probe",
        url,
        &RemoteSettings {
            timeout,
            ..RemoteSettings::default()
        },
    )
    .expect("client")
}

fn echo_context(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/echo",
        web::route().to(|ctx: CallContext, req: HttpRequest| async move {
            let marks = CallMarks::of(req.headers());
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            HttpResponse::Ok().json(serde_json::json!({
                "request_id": ctx.request_id().as_str(),
                "has_deadline": ctx.deadline().is_some(),
                "budget_ms": ctx.remaining().map(|d| d.as_millis() as u64),
                "call": header(CALL_HEADER),
                "operation": marks.operation,
                "safe_to_repeat": marks.safe,
                "forwarded": marks.forwarded,
            }))
        }),
    )
    .route(
        "/bare-500",
        web::get().to(|| async { HttpResponse::InternalServerError().body("oops") }),
    )
    .route(
        "/problem",
        web::get().to(|| async {
            Err::<HttpResponse, _>(cleave_kernel::Failure::from(KernelError::InvalidQuery {
                detail: "bad q".into(),
            }))
        }),
    );
}

#[tokio::test]
async fn request_id_and_deadline_travel_with_the_call() {
    let server = TestServer::spawn(echo_context);
    let remote = client(server.base_url.clone(), Duration::from_secs(30));
    let ctx = CallContext::root().with_timeout(Duration::from_secs(10));
    let echoed: serde_json::Value = remote
        .op(&ECHO, &ctx)
        .fetch::<_, KernelError>()
        .await
        .expect("echo");
    assert_eq!(echoed["request_id"], ctx.request_id().as_str());
    assert_eq!(echoed["has_deadline"], true);
    assert!(
        echoed["budget_ms"].as_u64().is_some_and(|ms| ms <= 10_000),
        "{echoed}"
    );
    // Without a caller deadline the module timeout becomes the budget.
    let echoed: serde_json::Value = remote
        .op(&ECHO, &CallContext::root())
        .fetch::<_, KernelError>()
        .await
        .expect("echo");
    assert_eq!(echoed["has_deadline"], true);
    assert!(
        echoed["budget_ms"].as_u64().is_some_and(|ms| ms <= 30_000),
        "{echoed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_call_that_gets_no_answer_ends_at_the_deadline() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let remote = client(url, Duration::from_millis(200));
    let err = remote
        .call(raw(&CallContext::root(), "/x"))
        .await
        .expect_err("the call must fail");
    assert!(
        matches!(err, RemoteError::DeadlineExceeded { module: "probe" }),
        "{err:?}"
    );
    let as_api: KernelError = err.into_api_error();
    assert_eq!(
        as_api.code(),
        "cleave.not_ready",
        "deadline becomes the caller's unavailable"
    );
    holder.abort();
}

#[tokio::test]
async fn an_expired_deadline_is_not_even_sent() {
    let server = TestServer::spawn(echo_context);
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let ctx = CallContext::root().with_timeout(Duration::ZERO);
    let err = remote
        .call(raw(&ctx, "/echo"))
        .await
        .expect_err("the call must fail");
    assert!(
        matches!(err, RemoteError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn refused_connections_and_bare_errors_are_unavailable_not_domain_errors() {
    // Port 1 (tcpmux): privileged, so no test server can take it; nothing listens there.
    let port: u16 = 1;
    let remote = client(
        Url::parse(&format!("http://127.0.0.1:{port}")).expect("url"),
        Duration::from_secs(5),
    );
    let err = remote
        .call(raw(&CallContext::root(), "/x"))
        .await
        .expect_err("the call must fail");
    assert!(matches!(err, RemoteError::NotSent { .. }), "{err:?}");

    let server = TestServer::spawn(echo_context);
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    // Whatever shape a remote 500 has, the caller sees its own "unavailable", never a 500.
    let typed = remote
        .op(&BARE_500, &CallContext::root())
        .fetch::<serde_json::Value, KernelError>()
        .await
        .expect_err("the call must fail");
    assert!(matches!(typed, KernelError::NotReady { .. }), "{typed:?}");

    // A 4xx problem with a known code comes back as the same typed error.
    let typed = remote
        .op(&PROBLEM, &CallContext::root())
        .fetch::<serde_json::Value, KernelError>()
        .await
        .expect_err("the call must fail");
    assert_eq!(
        typed,
        KernelError::InvalidQuery {
            detail: "bad q".into()
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn remote_calls_name_their_operation_and_whether_they_may_be_repeated() {
    let server = TestServer::spawn(echo_context);
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let ctx = CallContext::root();
    let seen = |echoed: serde_json::Value| {
        (
            echoed["operation"].as_str().map(String::from),
            echoed["safe_to_repeat"].as_bool().expect("a flag"),
        )
    };
    let read: serde_json::Value = remote
        .op(&ECHO, &ctx)
        .fetch::<_, KernelError>()
        .await
        .expect("read");
    assert_eq!(
        seen(read),
        (Some("probe.echo".into()), true),
        "a read is safe to repeat"
    );
    let keyless: serde_json::Value = remote
        .op(&CHARGE, &ctx)
        .json(&serde_json::json!({}))
        .fetch::<_, KernelError>()
        .await
        .expect("keyless charge");
    assert_eq!(
        seen(keyless),
        (Some("probe.charge".into()), false),
        "a keyed operation without its key is not"
    );
    let keyed: serde_json::Value = remote
        .op(&CHARGE, &ctx)
        .keyed(true)
        .json(&serde_json::json!({}))
        .fetch::<_, KernelError>()
        .await
        .expect("keyed charge");
    assert!(seen(keyed).1, "with its key it is");
    let unnamed: serde_json::Value =
        serde_json::from_slice(&remote.call(raw(&ctx, "/echo")).await.expect("raw").body)
            .expect("json");
    assert!(
        unnamed["call"].is_null(),
        "a raw request names nothing: {unnamed}"
    );
    let forwarded: serde_json::Value = serde_json::from_slice(
        &remote
            .call(RemoteRequest {
                op: Some(&ECHO),
                forwarded: true,
                ..raw(&ctx, "/echo")
            })
            .await
            .expect("forwarded")
            .body,
    )
    .expect("json");
    assert_eq!(
        forwarded["call"], "op=probe.echo; safe; forwarded",
        "the three marks in one header"
    );
    assert_eq!(forwarded["forwarded"], true);
    server.stop().await;
}

/// A test server with the middleware stack under `limits`, serving `routes` and a probe at
/// `/health/live`.
fn spawn_limited<F>(limits: HttpLimits, routes: F) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let stack = ServerStack {
        limits,
        ..ServerStack::default()
    };
    TestServer::spawn_with(stack, move |cfg| {
        routes(cfg);
        cfg.route(
            "/health/live",
            web::get().to(|| async { HttpResponse::Ok().finish() }),
        );
    })
}

#[tokio::test]
async fn a_request_that_takes_longer_than_the_server_allows_gets_504() {
    let limits = HttpLimits {
        handler_timeout: Duration::from_millis(200),
        ..HttpLimits::default()
    };
    let server = spawn_limited(limits, |cfg| {
        cfg.route(
            "/never",
            web::get().to(|| async {
                std::future::pending::<()>().await;
                HttpResponse::Ok().finish()
            }),
        );
        cfg.route(
            "/at-once",
            web::get().to(|| async { HttpResponse::Ok().finish() }),
        );
    });
    let url = |p: &str| server.base_url.join(p).expect("url");
    let res = reqwest::get(url("/never")).await.expect("send");
    assert_eq!(res.status(), 504);
    let body: serde_json::Value = res.json().await.expect("problem");
    assert_eq!(body["code"], "cleave.timeout");
    assert_eq!(
        reqwest::get(url("/at-once")).await.expect("send").status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed_at_once_and_probes_are_not() {
    let limits = HttpLimits {
        max_in_flight: 2,
        ..HttpLimits::default()
    };
    let (entered, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = release.clone();
    let server = spawn_limited(limits, move |cfg| {
        let (entered, gate) = (entered.clone(), gate.clone());
        cfg.route(
            "/held",
            web::get().to(move || {
                let (entered, gate) = (entered.clone(), gate.clone());
                async move {
                    entered.send(()).expect("the test listens");
                    let _permit = gate.acquire().await.expect("gate");
                    HttpResponse::Ok().finish()
                }
            }),
        );
    });
    let url = |p: &str| server.base_url.join(p).expect("url");
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reqwest::get(url("/held"))))
        .collect();
    for _ in 0..2 {
        arrivals.recv().await.expect("a held request arrives");
    }
    let shed = reqwest::get(url("/held")).await.expect("send");
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: serde_json::Value = shed.json().await.expect("problem");
    assert_eq!(body["code"], "cleave.overloaded");
    assert!(
        body["request_id"].is_null(),
        "refused before any work: {body}"
    );
    assert_eq!(
        reqwest::get(url("/health/live"))
            .await
            .expect("send")
            .status(),
        200,
        "probes are never shed"
    );
    release.add_permits(2);
    for call in held {
        assert_eq!(call.await.expect("task").expect("send").status(), 200);
    }
    // Room again once the held requests were answered.
    release.add_permits(1);
    let again = tokio::spawn(reqwest::get(url("/held")));
    arrivals.recv().await.expect("admitted");
    assert_eq!(again.await.expect("task").expect("send").status(), 200);
    server.stop().await;
}

/// A worker whose event loop runs late (here a handler blocks it, as a flood of requests that
/// wait on nothing would keep it busy) refuses the requests queued behind it, though none of
/// them is in flight; probes still pass; once the loop is on time again requests are admitted.
#[tokio::test]
async fn requests_queued_behind_a_late_event_loop_are_shed_until_it_is_on_time() {
    let limits = HttpLimits {
        max_queue_delay: Duration::from_millis(200),
        ..HttpLimits::default()
    };
    let (entered, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = spawn_limited(limits, move |cfg| {
        let entered = entered.clone();
        cfg.route(
            "/block",
            web::get().to(move || {
                entered.send(()).expect("the test listens");
                // Holds the worker's only thread: nothing else on it runs meanwhile.
                std::thread::sleep(Duration::from_millis(600));
                async { HttpResponse::Ok().finish() }
            }),
        );
        cfg.route(
            "/quick",
            web::get().to(|| async { HttpResponse::Ok().finish() }),
        );
    });
    let url = |p: &str| server.base_url.join(p).expect("url");
    let http = reqwest::Client::new();
    let get = |p: &str| http.get(url(p)).send();
    assert_eq!(get("/quick").await.expect("send").status(), 200, "on time");

    let blocked = tokio::spawn(reqwest::get(url("/block")));
    arrivals.recv().await.expect("the blocking request arrives");
    let (behind, also_behind, probe) =
        tokio::join!(get("/quick"), get("/quick"), get("/health/live"));
    for queued in [behind, also_behind] {
        let queued = queued.expect("send");
        assert_eq!(queued.status(), 503, "queued behind a loop 600 ms late");
        assert_eq!(queued.headers()["retry-after"], "1");
        let body: serde_json::Value = queued.json().await.expect("problem");
        assert_eq!(body["code"], "cleave.overloaded", "{body}");
    }
    assert_eq!(probe.expect("send").status(), 200, "probes are never shed");
    assert_eq!(blocked.await.expect("task").expect("send").status(), 200);

    // The loop's timer, next due within 100 ms, finds it on time: requests are admitted.
    let mut refused = 0;
    loop {
        match get("/quick").await.expect("send").status().as_u16() {
            200 => break,
            503 if refused < 100_000 => refused += 1,
            other => panic!("after {refused} refusals: {other}"),
        }
    }
    server.stop().await;
}

/// A counting read: every request the server sees bumps the count it answers.
fn counting(hits: Arc<AtomicUsize>) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    counting_unless_refused(hits, Arc::new(AtomicBool::new(false)))
}

/// [`counting`], whose reads are refused (404, not counted) while `refuse` is set.
fn counting_unless_refused(
    hits: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        for path in ["/count", "/carts/{tail:.*}"] {
            let (hits, refuse) = (hits.clone(), refuse.clone());
            cfg.route(
                path,
                web::route().to(move || {
                    let answer = if refuse.load(Ordering::SeqCst) {
                        Err(cleave_kernel::Failure::from(KernelError::RouteNotFound))
                    } else {
                        Ok(HttpResponse::Ok().json(hits.fetch_add(1, Ordering::SeqCst) + 1))
                    };
                    async move { answer }
                }),
            );
        }
        cfg.route(
            "/missing",
            web::get().to(|| async {
                Err::<HttpResponse, _>(cleave_kernel::Failure::from(KernelError::RouteNotFound))
            }),
        );
    }
}

const KEPT: Operation = Operation {
    cached: true,
    ..read("probe.kept", "/count")
};
const KEPT_MISSING: Operation = Operation {
    cached: true,
    ..read("probe.kept_missing", "/missing")
};
const NOT_KEPT: Operation = read("probe.not_kept", "/count");
const WRITE: Operation = Operation {
    method: HttpMethod::Put,
    repeat: Repeat::Idempotent,
    ..read("probe.write", "/count")
};

/// A read of one user's cart: not everyone may call it.
const OWNED: Operation = Operation {
    access: &[
        cleave_kernel::call::Access::Owner,
        cleave_kernel::call::Access::Module("storefront"),
    ],
    ..read("probe.owned", "/carts/{user_id}")
};
const OWNED_ADD: Operation = Operation {
    method: HttpMethod::Post,
    repeat: Repeat::Once,
    ..OWNED
};
const OWNED_ADD_PATH: Operation = Operation {
    path: "/carts/{user_id}/items",
    ..OWNED_ADD
};

/// Reads `user`'s cart ([`OWNED`]) as `ctx`: the count the callee answered.
async fn read_cart(remote: &RemoteClient, ctx: &CallContext, user: &str) -> usize {
    remote
        .op(&OWNED, ctx)
        .params(&[user])
        .fetch::<usize, KernelError>()
        .await
        .expect("read")
}

#[tokio::test]
async fn a_read_whose_caller_takes_a_kept_answer_is_kept_per_asker_and_dropped_when_its_resource_changes()
 {
    let hits = Arc::new(AtomicUsize::new(0));
    let refuse = Arc::new(AtomicBool::new(false));
    let keys = cleave_kernel::testing::TestKeys::new();
    let server = TestServer::spawn_with(
        cleave_kernel::http::ServerStack {
            authenticator: Some(keys.authenticator()),
            ..Default::default()
        },
        counting_unless_refused(hits.clone(), refuse.clone()),
    );
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let read = |ctx: CallContext, user: &'static str| {
        let remote = remote.clone();
        async move { read_cart(&remote, &ctx, user).await }
    };
    let write = |op: &'static Operation, user: &'static str| {
        let remote = remote.clone();
        async move {
            remote
                .op(op, &CallContext::root())
                .params(&[user])
                .send::<KernelError>()
                .await
                .expect("write");
        }
    };
    let fresh = CallContext::root();
    let will_do = CallContext::root().kept_answer_will_do();
    let alice = will_do.clone().with_principal(keys.principal("u1", &[]));
    // A read not marked `cached` whose caller did not say a kept answer will do: always asked
    // (and, before any caller asked so, not kept).
    assert_eq!(read(fresh.clone(), "u1").await, 1);
    assert_eq!(read(fresh.clone(), "u1").await, 2);
    // The caller says it will do: asked once, then kept.
    assert_eq!(read(will_do.clone(), "u1").await, 3);
    assert_eq!(read(will_do.clone(), "u1").await, 3, "the kept answer");
    // Not for another asker: the callee's access rules decided it for the first one.
    assert_eq!(read(alice.clone(), "u1").await, 4);
    assert_eq!(
        read(alice.clone(), "u1").await,
        4,
        "alice's own kept answer"
    );
    // Another cart is another question.
    assert_eq!(read(will_do.clone(), "u2").await, 5);
    // A change of u1's cart made through this client drops what was kept about it (for
    // every asker), and only that.
    write(&OWNED_ADD_PATH, "u1").await;
    assert_eq!(read(will_do.clone(), "u1").await, 7);
    assert_eq!(read(alice.clone(), "u1").await, 8);
    assert_eq!(
        read(will_do.clone(), "u2").await,
        5,
        "u2's cart is kept still"
    );
    // The module announced a change of u2's cart (its event names the resource).
    remote.forget_answers_about("/carts/u2");
    assert_eq!(read(will_do.clone(), "u2").await, 9);
    assert_eq!(
        read(will_do.clone(), "u1").await,
        7,
        "u1's cart is kept still"
    );
    // A write to the resource itself drops it too.
    write(&OWNED_ADD, "u1").await;
    assert_eq!(read(will_do.clone(), "u1").await, 11);
    // A fresh read is asked in any case, and renews what is kept for the callers whose kept
    // answer will do (the cart page's read serves the header's count after it).
    write(&OWNED_ADD, "u1").await;
    assert_eq!(read(fresh.clone(), "u1").await, 13);
    assert_eq!(
        read(fresh.clone(), "u1").await,
        14,
        "a fresh read always asks"
    );
    assert_eq!(
        read(will_do.clone(), "u1").await,
        14,
        "renewed by the fresh read"
    );
    assert_eq!(
        read(alice.clone(), "u1").await,
        15,
        "only for the same asker"
    );
    // A fresh read the callee refuses (the cart gone, the token revoked) drops what was kept
    // for that asker: its next read asks again.
    refuse.store(true, Ordering::SeqCst);
    let refused = remote
        .op(&OWNED, &fresh)
        .params(&["u1"])
        .fetch::<usize, KernelError>()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    refuse.store(false, Ordering::SeqCst);
    assert_eq!(read(will_do.clone(), "u1").await, 16, "asked again");
    server.stop().await;
}

/// The event a change made through the client below announces, as its answer names it.
const ADDED: uuid::Uuid = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
/// An event of a change made elsewhere.
const ELSEWHERE: uuid::Uuid = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

#[tokio::test]
async fn the_event_of_a_change_made_through_this_client_drops_only_what_was_kept_before_it() {
    // Carts are counted reads, as above; an addition commits event ADDED.
    let counting = counting_unless_refused(
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let server = TestServer::spawn(move |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/carts/{user_id}/items",
            web::post().to(|| async {
                cleave_kernel::context::note_announced(ADDED);
                HttpResponse::NoContent().finish()
            }),
        );
        counting(cfg);
    });
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let will_do = CallContext::root().kept_answer_will_do();
    let read = |user: &'static str| {
        let (remote, ctx) = (remote.clone(), will_do.clone());
        async move { read_cart(&remote, &ctx, user).await }
    };
    assert_eq!(read("u1").await, 1);
    assert_eq!(read("u2").await, 2);
    // An addition to u1's cart through this client: its answer names the event, and u1's
    // kept cart goes; the read after it is kept.
    remote
        .op(&OWNED_ADD_PATH, &CallContext::root())
        .params(&["u1"])
        .send::<KernelError>()
        .await
        .expect("add");
    assert_eq!(read("u1").await, 3);
    // The addition's event arrives, naming all carts: what was read since the addition
    // stays (it shows the change), what was kept before goes.
    remote.forget_answers_about_change(ADDED, "/carts");
    assert_eq!(read("u1").await, 3, "read after the change: kept");
    assert_eq!(read("u2").await, 4, "kept before the change: dropped");
    // A change made elsewhere drops what it names, whenever it was read.
    remote.forget_answers_about_change(ELSEWHERE, "/carts/u1");
    assert_eq!(read("u1").await, 5);
    // Only a calling module is told which events its call committed.
    let plain = reqwest::Client::new()
        .post(format!("{}carts/u1/items", server.base_url))
        .send()
        .await
        .expect("plain request");
    assert_eq!(plain.status(), 204);
    assert!(
        plain
            .headers()
            .get(cleave_kernel::context::ANNOUNCED_HEADER)
            .is_none(),
        "{:?}",
        plain.headers()
    );
    server.stop().await;
}

#[tokio::test]
async fn answers_of_cached_operations_are_kept_until_forgotten_and_only_those() {
    let hits = Arc::new(AtomicUsize::new(0));
    let server = TestServer::spawn(counting(hits.clone()));
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let ctx = CallContext::root();
    let fetch = |op: &'static Operation, body: Option<u32>| {
        let (remote, ctx) = (remote.clone(), ctx.clone());
        async move {
            let call = remote.op(op, &ctx);
            let call = match body {
                Some(b) => call.json(&b),
                None => call,
            };
            call.fetch::<usize, KernelError>().await
        }
    };
    assert_eq!(fetch(&KEPT, None).await.expect("first"), 1);
    assert_eq!(
        fetch(&KEPT, None).await.expect("kept"),
        1,
        "answered from the kept answer"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Another body is another question.
    assert_eq!(fetch(&KEPT, Some(7)).await.expect("other body"), 2);
    // Operations not marked cached always reach the module.
    assert_eq!(fetch(&NOT_KEPT, None).await.expect("not kept"), 3);
    assert_eq!(fetch(&NOT_KEPT, None).await.expect("not kept"), 4);
    // Error answers are not kept.
    for _ in 0..2 {
        assert!(fetch(&KEPT_MISSING, None).await.is_err());
    }
    // The module said its data changed.
    remote.forget_answers();
    assert_eq!(fetch(&KEPT, None).await.expect("asked again"), 5);
    assert_eq!(fetch(&KEPT, None).await.expect("kept again"), 5);
    // A change made through this client: its own next read asks again.
    assert_eq!(fetch(&WRITE, None).await.expect("write"), 6);
    assert_eq!(fetch(&KEPT, None).await.expect("asked after the write"), 7);

    // With no time to keep them, none is kept.
    let keeps_none = RemoteClient::new(
        "probe",
        server.base_url.clone(),
        &RemoteSettings {
            cache_ttl: Duration::ZERO,
            ..RemoteSettings::default()
        },
    )
    .expect("client");
    for expected in [8, 9] {
        let n: usize = keeps_none
            .op(&KEPT, &ctx)
            .fetch::<_, KernelError>()
            .await
            .expect("read");
        assert_eq!(n, expected);
    }
    server.stop().await;
}
