//! The call path: every call of a contract operation, local, remote or forwarded, passes the
//! layers with who calls what; a layer can refuse a call before it reaches the callee. A
//! small contract declared here with the same macros the modules use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cleave_kernel::call::{
    BoxFuture, CallInfo, CallLayer, CallLayers, CallPath, EDGE, Locality, Next, Outcome,
};
use cleave_kernel::http::forward::configure_forward;
use cleave_kernel::module::Contract;
use cleave_kernel::testing::{TestGrpcServer, TestKeys, TestServer};
use cleave_kernel::{ApiError, CallContext, async_trait, contract, contract_error};

/// Errors of the probe contract.
#[contract_error(module = "probe")]
pub enum ProbeError {
    /// The probe declines, as asked.
    #[api(status = 409)]
    #[error("declined: {why}")]
    Declined {
        /// Why.
        why: String,
    },
}

/// A contract to watch calls with.
#[contract(module = "probe", error = ProbeError, client = ProbeClient, http = probe_http)]
pub trait ProbeApi: Send + Sync {
    /// Answers the word.
    #[op(GET "/echo/{word}", read_only, access(anyone))]
    #[rest(
        params(("word" = String, Path, description = "Any word")),
        responses((status = 200, description = "The word", body = String))
    )]
    async fn echo(&self, ctx: &CallContext, word: String) -> Result<String, ProbeError>;

    /// Always refuses.
    #[op(POST "/refusals", once, access(anyone), errors(Declined))]
    #[rest(responses((status = 204, description = "Never")))]
    async fn refuse(&self, ctx: &CallContext) -> Result<(), ProbeError>;
}

/// The probe's routes.
pub mod probe_http {
    use actix_web::web;
    use cleave_kernel::http::{Call, Reply, Routes, no_content, ok};

    use super::{ProbeApi, ops};

    /// Serves both operations.
    pub fn routes(r: &mut Routes) {
        r.add(&ops::ECHO, echo).add(&ops::REFUSE, refuse);
    }

    async fn echo(c: Call<dyn ProbeApi>, word: web::Path<String>) -> Reply {
        ok(c.api.echo(&c.ctx, word.into_inner()).await?)
    }

    async fn refuse(c: Call<dyn ProbeApi>) -> Reply {
        c.api.refuse(&c.ctx).await?;
        no_content()
    }
}

#[async_trait]
impl ProbeApi for ProbeClient {
    async fn echo(&self, ctx: &CallContext, word: String) -> Result<String, ProbeError> {
        self.remote
            .op(&ops::ECHO, ctx)
            .params(&[&word])
            .fetch()
            .await
    }

    async fn refuse(&self, ctx: &CallContext) -> Result<(), ProbeError> {
        self.remote.op(&ops::REFUSE, ctx).send().await
    }
}

/// The probe itself: counts the calls that reach it.
#[derive(Default)]
struct Probe {
    reached: AtomicUsize,
}

#[async_trait]
impl ProbeApi for Probe {
    async fn echo(&self, _: &CallContext, word: String) -> Result<String, ProbeError> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        Ok(word)
    }

    async fn refuse(&self, _: &CallContext) -> Result<(), ProbeError> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        Err(ProbeError::Declined {
            why: "as asked".into(),
        })
    }
}

/// What a layer saw of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    caller: &'static str,
    callee: &'static str,
    op: String,
    locality: Locality,
    request_id: String,
    outcome: Outcome,
}

/// Records every call it sees, and its outcome.
#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().expect("lock").clone()
    }
}

impl CallLayer for Recorder {
    fn around<'a>(&'a self, call: &'a CallInfo<'a>, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let outcome = next.run().await;
            self.0.lock().expect("lock").push(Seen {
                caller: call.caller,
                callee: call.callee,
                op: call.op.id.to_owned(),
                locality: call.locality,
                request_id: call.ctx.request_id().to_string(),
                outcome: outcome.clone(),
            });
            outcome
        })
    }
}

/// Refuses every call without running the rest of the path.
struct Refuser;

impl CallLayer for Refuser {
    fn around<'a>(&'a self, _: &'a CallInfo<'a>, _: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::Refused {
                reason: "shed by a test layer".into(),
            }
        })
    }
}

fn path(caller: &'static str, locality: Locality, layers: Vec<Arc<dyn CallLayer>>) -> CallPath {
    CallPath::new(caller, "probe", locality, CallLayers::new(layers))
}

#[tokio::test]
async fn local_calls_pass_the_layers_with_who_calls_what() {
    let recorder = Arc::new(Recorder::default());
    let probe = Arc::new(Probe::default());
    let api = ProbeContract::intercept(
        probe.clone(),
        path("checkout", Locality::Local, vec![recorder.clone()]),
    );
    let ctx = CallContext::root();
    assert_eq!(api.echo(&ctx, "hi".into()).await, Ok("hi".into()));
    assert!(matches!(
        api.refuse(&ctx).await,
        Err(ProbeError::Declined { .. })
    ));
    let seen = recorder.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.caller, s.callee, s.op.as_str(), s.locality))
            .collect::<Vec<_>>(),
        vec![
            ("checkout", "probe", "probe.echo", Locality::Local),
            ("checkout", "probe", "probe.refuse", Locality::Local),
        ]
    );
    assert_eq!(seen[0].outcome, Outcome::Ok);
    assert_eq!(
        seen[1].outcome,
        Outcome::Failed {
            code: "probe.declined",
            status: 409
        }
    );
    assert_eq!(seen[0].request_id, ctx.request_id().as_str());
    assert_eq!(probe.reached.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn remote_calls_pass_the_same_point_and_keep_their_typed_errors() {
    let probe = Arc::new(Probe::default());
    let server = TestServer::serve::<ProbeContract>(probe.clone(), &TestKeys::new());
    let recorder = Arc::new(Recorder::default());
    let api = ProbeContract::intercept(
        server.client::<ProbeContract>(),
        path("storefront", Locality::Remote, vec![recorder.clone()]),
    );
    let ctx = CallContext::root();
    assert_eq!(api.echo(&ctx, "a b/c".into()).await, Ok("a b/c".into()));
    assert_eq!(
        api.refuse(&ctx).await,
        Err(ProbeError::Declined {
            why: "as asked".into()
        }),
        "the remote error is the same variant"
    );
    let seen = recorder.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.caller == "storefront" && s.locality == Locality::Remote)
    );
    assert_eq!(probe.reached.load(Ordering::SeqCst), 2);
    server.stop().await;
}

/// A probe whose first `fail_first` echoes answer `unavailable`, recording the request id and
/// the time left of each call that reaches it.
struct Flaky {
    fail_first: usize,
    reached: AtomicUsize,
    seen: Mutex<Vec<(String, Option<std::time::Duration>)>>,
}

#[async_trait]
impl ProbeApi for Flaky {
    async fn echo(&self, ctx: &CallContext, word: String) -> Result<String, ProbeError> {
        self.seen
            .lock()
            .expect("lock")
            .push((ctx.request_id().to_string(), ctx.remaining()));
        if self.reached.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(ProbeError::Unavailable {
                reason: "not yet".into(),
                upstream: None,
            });
        }
        Ok(word)
    }

    async fn refuse(&self, _: &CallContext) -> Result<(), ProbeError> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        Err(ProbeError::Declined {
            why: "as asked".into(),
        })
    }
}

#[tokio::test]
async fn grpc_calls_carry_id_and_deadline_are_retried_when_safe_and_keep_typed_errors() {
    let flaky = Arc::new(Flaky {
        fail_first: 1,
        reached: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let server = TestGrpcServer::serve::<ProbeContract>(flaky.clone(), &TestKeys::new()).await;
    let recorder = Arc::new(Recorder::default());
    let api = ProbeContract::intercept(
        server.client::<ProbeContract>(),
        path("storefront", Locality::Remote, vec![recorder.clone()]),
    );
    let budget = std::time::Duration::from_secs(20);
    let ctx = CallContext::root().with_timeout(budget);
    // The first try answers 503 (UNAVAILABLE with its problem): a read is tried again.
    assert_eq!(api.echo(&ctx, "a b/c".into()).await, Ok("a b/c".into()));
    let seen = flaky.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "tried twice: {seen:?}");
    for (id, left) in &seen {
        assert_eq!(id, ctx.request_id().as_str(), "the request id travels");
        let left = left.expect("the deadline travels as grpc-timeout");
        assert!(left <= budget && !left.is_zero(), "{left:?}");
    }
    // An operation that may not be repeated is not, and its error is the same variant.
    assert_eq!(
        api.refuse(&ctx).await,
        Err(ProbeError::Declined {
            why: "as asked".into()
        })
    );
    assert_eq!(flaky.reached.load(Ordering::SeqCst), 3);
    assert_eq!(recorder.seen().len(), 2, "one call each through the path");
    server.stop().await;
}

/// A call is written, and its answer read, on the thread that makes it: a connection another
/// thread opened (and drives, on a runtime of its own, as each actix worker has) is not handed
/// to it, so a call never waits for another thread. Over gRPC one HTTP/2 connection would
/// serve every call at once, whichever thread asked.
#[tokio::test]
async fn a_call_never_waits_for_a_connection_another_thread_drives() {
    let server =
        TestGrpcServer::serve::<ProbeContract>(Arc::new(Probe::default()), &TestKeys::new()).await;
    let api = server.client::<ProbeContract>();
    let (called, answered) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let other = {
        let api = Arc::clone(&api);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let echoed = runtime.block_on(api.echo(&CallContext::root(), "there".into()));
            let _ = called.send(echoed);
            // Keeps its runtime, and with it its connection, without driving it.
            let _ = released.recv();
        })
    };
    assert_eq!(
        answered.await.expect("the other thread calls"),
        Ok("there".into())
    );
    let ctx = CallContext::root().with_timeout(std::time::Duration::from_secs(5));
    let here = api.echo(&ctx, "here".into()).await;
    release.send(()).expect("the other thread waits");
    other.join().expect("the other thread ends");
    assert_eq!(here, Ok("here".into()));
    server.stop().await;
}

#[tokio::test]
async fn a_layer_that_refuses_answers_unavailable_without_reaching_the_callee() {
    let probe = Arc::new(Probe::default());
    let recorder = Arc::new(Recorder::default());
    let api = ProbeContract::intercept(
        probe.clone(),
        path(
            "checkout",
            Locality::Local,
            vec![recorder.clone(), Arc::new(Refuser)],
        ),
    );
    match api.echo(&CallContext::root(), "hi".into()).await {
        Err(ProbeError::Unavailable { reason, .. }) => assert!(reason.contains("shed")),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(
        probe.reached.load(Ordering::SeqCst),
        0,
        "the probe was not called"
    );
    assert!(matches!(
        recorder.seen()[0].outcome,
        Outcome::Refused { .. }
    ));
}

#[tokio::test]
async fn forwarded_routes_pass_the_call_path_as_the_edge() {
    let probe = Arc::new(Probe::default());
    let keys = TestKeys::new();
    let backend = TestServer::serve::<ProbeContract>(probe.clone(), &keys);
    let recorder = Arc::new(Recorder::default());
    let remote = cleave_kernel::client::RemoteClient::new(
        "probe",
        backend.base_url.clone(),
        &cleave_kernel::client::RemoteSettings::default(),
    )
    .expect("client");
    let front_path = path(EDGE, Locality::Remote, vec![recorder.clone()]);
    let front = TestServer::spawn(move |cfg| {
        configure_forward::<ProbeError>(cfg, remote.clone(), ops::ALL, front_path.clone());
    });
    let url = |p: &str| front.base_url.join(p).expect("url");
    let res = reqwest::get(url("/api/probe/v1/echo/hello"))
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<String>().await.expect("json"), "hello");
    let res = reqwest::Client::new()
        .post(url("/api/probe/v1/refusals"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 409, "the hosting process's answer, as it is");
    // Not a route of the contract: forwarded without an operation, answered by the backend.
    let res = reqwest::get(url("/api/probe/v1/nothing-here"))
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
    let seen = recorder.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.caller, s.op.as_str(), &s.outcome))
            .collect::<Vec<_>>(),
        vec![
            (EDGE, "probe.echo", &Outcome::Ok),
            (EDGE, "probe.refuse", &Outcome::Ok),
        ],
        "the forwarder relays answers: a 409 relayed is a call that went through"
    );
    front.stop().await;
    backend.stop().await;
}

#[test]
fn the_contract_declares_each_operation_once() {
    assert_eq!(ProbeContract::MODULE, "probe");
    assert_eq!(ops::ECHO.path, "/api/probe/v1/echo/{word}");
    assert_eq!(ops::REFUSE.errors, &["probe.declined"]);
    assert!(ops::ECHO.repeat.is_safe(false) && !ops::REFUSE.repeat.is_safe(true));
    let codes: Vec<_> = ProbeError::ERRORS
        .iter()
        .map(|d| (d.code, d.status))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("probe.declined", 409),
            ("probe.unavailable", 503),
            ("probe.internal", 500),
            ("probe.unauthenticated", 401),
            ("probe.forbidden", 403)
        ]
    );
    let doc = ProbeContract::openapi().expect("document");
    assert!(doc.paths.paths.contains_key("/api/probe/v1/echo/{word}"));
}
