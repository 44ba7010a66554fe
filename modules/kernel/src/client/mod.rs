//! The one remote-call pipeline. Every module's HTTP client sends its calls through a
//! [`RemoteClient`]: a tower service stack over one pooled, keep-alive HTTP client (hyper's,
//! over rustls) per target module. Layers that every remote call needs (the deadline, the bulkhead, retries
//! within a budget, and innermost the choice of a replica with its own circuit breaker) are
//! added here, in [`RemoteClient::new`], and no module client changes. See [`crate::resilience`] for when a
//! call is tried again and when the breaker opens.
//!
//! Here: [`RemoteClient`] and how its pipeline is stacked. Beside it, one file a concern:
//! `request` (a call, its answer, its errors), `settings`, `op` (a contract operation's call
//! as module clients build it), `marks` (the `x-cleave-call` header), `kept` (answers kept
//! for callers that a kept answer will do), `steps` (deadline, bulkhead), `retry`,
//! `replicas` (choice, breakers, discovery), `wire` (REST over hyper's per-thread pools) and
//! `grpc`.

mod grpc;
mod kept;
mod marks;
mod op;
mod replicas;
mod request;
mod retry;
mod settings;
mod steps;
mod wire;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;

use async_trait::async_trait;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

pub use hyper::Method;
pub use url::Url;

use crate::balance::{self, Load};
use crate::call::Operation;
use crate::context::{CallContext, DEADLINE_HEADER, REQUEST_ID_HEADER};
use crate::error::{ApiError, Problem, Upstream, is_problem_json};
use crate::health::ReadinessCheck;
use crate::kept::{Kept, Ticket};
use crate::registry::Found;
use crate::resilience::{Breaker, BreakerSettings, BreakerState, RetrySettings, random_up_to};
use tower::retry::budget::{Budget, TpsBudget};

use kept::*;
pub use marks::*;
pub use op::*;
use replicas::*;
pub use request::*;
pub(crate) use retry::*;
pub use settings::*;
use steps::*;
pub(crate) use wire::*;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The type-erased service stack every remote call runs through.
pub type Pipeline = BoxCloneSyncService<RemoteRequest, RemoteResponse, RemoteError>;

/// A handle to one remote module: its base url and the pipeline to reach it. Cheap to clone;
/// clones share the connection pool.
#[derive(Clone)]
pub struct RemoteClient {
    module: &'static str,
    base: Url,
    transport: Transport,
    pipeline: Pipeline,
    replicas: Replicas,
    kept: Arc<KeptAnswers>,
}

impl fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteClient")
            .field("module", &self.module)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// Builds the pipeline to `module` at `base` (e.g. `http://10.0.0.7:8080`).
    ///
    /// # Errors
    /// [`RemoteError::NotSent`] when the HTTP client cannot be built (TLS setup).
    pub fn new(
        module: &'static str,
        base: Url,
        settings: &RemoteSettings,
    ) -> Result<Self, RemoteError> {
        let urls =
            if settings.replicas.is_empty() && !matches!(settings.discovery, Discovery::Etcd(_)) {
                vec![base.clone()]
            } else {
                settings.replicas.clone()
            };
        let transport = Transport::of(&base, settings.transport);
        let settings = &RemoteSettings {
            transport,
            ..settings.clone()
        };
        let shared = wire_client(module, settings, None)?;
        let set = urls
            .iter()
            .map(|url| Replica::new(module, url.clone(), None, shared.clone(), settings))
            .collect();
        let replicas = Replicas {
            module,
            set: Arc::new(arc_swap::ArcSwap::from_pointee(set)),
        };
        match &settings.discovery {
            Discovery::Static => {}
            Discovery::Dns { every } => replicas.discover(urls, *every, settings.clone()),
            Discovery::Etcd(registry) => {
                replicas.follow(registry.follow(module), shared, settings.clone());
            }
        }
        let limit = settings.max_concurrency.max(1);
        let pipeline = tower::ServiceBuilder::new()
            .layer(StepLayer(Deadline {
                module,
                default_timeout: settings.timeout,
            }))
            .layer(StepLayer(Bulkhead {
                module,
                limit,
                permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            }))
            .layer(tower::retry::RetryLayer::new(RetryPolicy::new(
                module,
                settings.retry,
            )))
            .service(replicas.clone());
        Ok(Self {
            module,
            base,
            transport,
            pipeline: BoxCloneSyncService::new(pipeline),
            replicas,
            kept: Arc::new(KeptAnswers::new(settings.cache_ttl)),
        })
    }

    /// Drops every answer kept of the module (it said its data changed); says how many were
    /// kept.
    pub fn forget_answers(&self) -> usize {
        self.kept.answers.forget_all()
    }

    /// Drops the answers kept about the resource at `path` (e.g. `/api/cart/v1/carts/u1`),
    /// about what is inside it and about what it is inside of; the others stay. Over gRPC an
    /// answer whose resource its call did not name (an operation without path parameters)
    /// goes with any.
    pub fn forget_answers_about(&self, path: &str) {
        self.kept
            .answers
            .forget_where(|(_, kept, _, _)| related(kept, path));
    }

    /// Drops what an event of the module says changed: the answers kept about `path` (as
    /// [`RemoteClient::forget_answers_about`]), or, when the event announces a change made
    /// through this client, only those kept before its answer came: the client dropped the
    /// written resource's answers then, and reads asked since show the change (a read asked
    /// before is not kept, see [`crate::kept`]). The cart page read after adding an item is
    /// then not dropped by the addition's own `cart.changed`. Says whether it was such a
    /// change.
    pub fn forget_answers_about_change(&self, event: uuid::Uuid, path: &str) -> bool {
        match self.kept.take_own_change(event) {
            Some(dropped) => {
                self.kept
                    .answers
                    .forget_kept_before(dropped, |(_, kept, _, _)| related(kept, path));
                true
            }
            None => {
                self.forget_answers_about(path);
                false
            }
        }
    }

    /// The module this client calls.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The module's base url.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Where the module's circuit breakers are, taken together: closed while any replica's
    /// is, half-open while any replica is being probed, else open.
    pub fn breaker(&self) -> BreakerState {
        let states: Vec<BreakerState> = self.replicas().into_iter().map(|(_, s)| s).collect();
        if states.contains(&BreakerState::Closed) {
            BreakerState::Closed
        } else if states.contains(&BreakerState::HalfOpen) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    /// Each replica (its url, and its address when discovery found one) with its breaker.
    pub fn replicas(&self) -> Vec<(String, BreakerState)> {
        self.replicas
            .set
            .load()
            .iter()
            .map(|r| (r.name(), r.breaker.state()))
            .collect()
    }

    /// How calls to the module travel.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sends one request through the pipeline.
    ///
    /// # Errors
    /// [`RemoteError`] when the module cannot be reached in time. A non-2xx answer is *not* an
    /// error here; see [`RemoteClient::get_json`] and friends.
    pub async fn call(&self, req: RemoteRequest) -> Result<RemoteResponse, RemoteError> {
        self.pipeline.clone().oneshot(req).await
    }

    /// A call of the contract operation `op` with `ctx`: fill in its path params, query,
    /// body and headers, then [`OpCall::fetch`] or [`OpCall::send`].
    pub fn op(&self, op: &'static Operation, ctx: &CallContext) -> OpCall<'_> {
        let method = Method::from_bytes(op.method.as_str().as_bytes()).unwrap_or(Method::GET);
        let mut req = RemoteRequest::new(ctx.clone(), method, op.path.to_owned());
        req.op = Some(op);
        OpCall {
            client: self,
            req,
            failure: None,
        }
    }

    fn check_status(&self, res: &RemoteResponse) -> Result<(), RemoteError> {
        if (200..300).contains(&res.status) {
            return Ok(());
        }
        if is_problem_json(res.content_type.as_deref())
            && let Ok(problem) = serde_json::from_slice::<Problem>(&res.body)
        {
            return Err(RemoteError::Problem {
                module: self.module,
                problem: Box::new(problem),
                retry_after_secs: retry_after(res).map(|d| d.as_secs()),
            });
        }
        Err(RemoteError::Protocol {
            module: self.module,
            status: res.status,
            reason: "error answer without a problem body".into(),
        })
    }
}

/// Readiness of a remote module: its `/health/live` answers 200.
#[async_trait]
impl ReadinessCheck for RemoteClient {
    fn name(&self) -> String {
        format!("module:{}", self.module)
    }

    async fn check(&self) -> Result<(), String> {
        let ctx = CallContext::root().with_timeout(Duration::from_secs(2));
        if self.transport == Transport::Grpc {
            return self.grpc_health(ctx).await;
        }
        let res = self
            .call(RemoteRequest::new(
                ctx,
                Method::GET,
                "/health/live".to_owned(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        if res.status == 200 {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", res.status))
        }
    }
}

impl RemoteClient {
    /// Readiness of a module reached over gRPC: the standard health service says its server
    /// is `SERVING`.
    async fn grpc_health(&self, ctx: CallContext) -> Result<(), String> {
        let mut req =
            RemoteRequest::new(ctx, Method::POST, "/grpc.health.v1.Health/Check".to_owned());
        // `HealthCheckRequest { service: "" }` (the whole server) is the empty message.
        req.body = Some(Bytes::new());
        req.content_type = Some("application/grpc".to_owned());
        let res = self.call(req).await.map_err(|e| e.to_string())?;
        if res.status != 200 {
            return Err(format!("health answered HTTP {}", res.status));
        }
        // `HealthCheckResponse { status: SERVING }`: field 1, varint 1.
        if res.body.as_ref() == [0x08, 0x01] {
            Ok(())
        } else {
            Err("its gRPC health is not SERVING".to_owned())
        }
    }
}
