//! The remote-call pipeline against real sockets: context propagation, deadlines, and how
//! failures surface.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteError, RemoteSettings, Url};
use cleave_kernel::error::{ApiError, KernelError};
use cleave_kernel::testing::TestServer;

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
        web::get().to(|ctx: CallContext| async move {
            HttpResponse::Ok().json(serde_json::json!({
                "request_id": ctx.request_id().as_str(),
                "has_deadline": ctx.deadline().is_some(),
                "budget_ms": ctx.remaining().map(|d| d.as_millis() as u64),
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
    let echoed: serde_json::Value = remote.get_json(&ctx, "/echo").await.expect("echo");
    assert_eq!(echoed["request_id"], ctx.request_id().as_str());
    assert_eq!(echoed["has_deadline"], true);
    assert!(
        echoed["budget_ms"].as_u64().is_some_and(|ms| ms <= 10_000),
        "{echoed}"
    );
    // Without a caller deadline the module timeout becomes the budget.
    let echoed: serde_json::Value = remote
        .get_json(&CallContext::root(), "/echo")
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
        .get_json::<serde_json::Value>(&CallContext::root(), "/x")
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
        .get_json::<serde_json::Value>(&ctx, "/echo")
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
        .get_json::<serde_json::Value>(&CallContext::root(), "/x")
        .await
        .expect_err("the call must fail");
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err:?}");

    let server = TestServer::spawn(echo_context);
    let remote = client(server.base_url.clone(), Duration::from_secs(5));
    let err = remote
        .get_json::<serde_json::Value>(&CallContext::root(), "/bare-500")
        .await
        .expect_err("the call must fail");
    // Whatever shape a remote 500 has, the caller sees its own "unavailable", never a 500.
    let typed: KernelError = err.into_api_error();
    assert!(matches!(typed, KernelError::NotReady { .. }), "{typed:?}");

    // A 4xx problem with a known code comes back as the same typed error.
    let err = remote
        .get_json::<serde_json::Value>(&CallContext::root(), "/problem")
        .await
        .expect_err("the call must fail");
    let typed: KernelError = err.into_api_error();
    assert_eq!(
        typed,
        KernelError::InvalidQuery {
            detail: "bad q".into()
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_that_takes_longer_than_the_server_allows_gets_504() {
    use cleave_kernel::http::HttpLimits;
    let server = TestServer::spawn(|cfg| {
        cfg.app_data(HttpLimits {
            handler_timeout: Duration::from_millis(200),
            ..HttpLimits::default()
        });
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
