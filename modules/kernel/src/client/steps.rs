//! The pipeline's stages that wrap the inner ones: the deadline and the bulkhead.

use super::*;

/// One stage of the pipeline that wraps the stages inside it: what it does with a call, the
/// inner stages being `inner`. [`StepLayer`] makes it a tower layer; the stages differ only
/// in this.
trait Step: Clone {
    fn call<S: Inner>(&self, inner: &mut S, req: RemoteRequest) -> Answer;
}

/// What a call answers, later.
pub(super) type Answer = BoxFuture<Result<RemoteResponse, RemoteError>>;

/// The stages inside a [`Step`]: a service of remote calls whose answers may be awaited
/// anywhere.
trait Inner:
    Service<RemoteRequest, Response = RemoteResponse, Error = RemoteError, Future: Send + 'static>
{
}

impl<S> Inner for S where
    S: Service<
            RemoteRequest,
            Response = RemoteResponse,
            Error = RemoteError,
            Future: Send + 'static,
        >
{
}

/// A [`Step`] as a tower layer.
#[derive(Clone)]
pub(super) struct StepLayer<P>(pub(super) P);

impl<P: Step, S> Layer<S> for StepLayer<P> {
    type Service = Stepped<P, S>;
    fn layer(&self, inner: S) -> Stepped<P, S> {
        Stepped {
            step: self.0.clone(),
            inner,
        }
    }
}

/// A [`Step`] around the stages inside it.
#[derive(Clone)]
pub(super) struct Stepped<P, S> {
    step: P,
    inner: S,
}

impl<P: Step, S: Inner> Service<RemoteRequest> for Stepped<P, S> {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        self.step.call(&mut self.inner, req)
    }
}

/// Gives every call the caller's deadline or the module's default timeout, whichever is
/// sooner (the callee is told the remaining budget), and refuses a call whose deadline has
/// passed. The time itself is kept once per try, by the breaker stage, and the retry policy
/// never waits past it: one timer per try, not a second one around the whole call.
#[derive(Clone)]
pub(super) struct Deadline {
    pub(super) module: &'static str,
    pub(super) default_timeout: Duration,
}

impl Step for Deadline {
    fn call<S: Inner>(&self, inner: &mut S, mut req: RemoteRequest) -> Answer {
        let module = self.module;
        req.ctx = req.ctx.with_timeout(self.default_timeout);
        if req.ctx.remaining().is_some_and(|left| left.is_zero()) {
            return Box::pin(async move { Err(RemoteError::DeadlineExceeded { module }) });
        }
        Box::pin(inner.call(req))
    }
}

/// The bulkhead: at most `limit` calls in flight to the module; a call past it is refused at
/// once ([`RemoteError::Overloaded`]), never queued. A semaphore's `try_acquire` rather than
/// tower's `ConcurrencyLimit` under `LoadShed`: those box a future and an error per call on
/// the hot path, for the same behaviour.
#[derive(Clone)]
pub(super) struct Bulkhead {
    pub(super) module: &'static str,
    pub(super) limit: usize,
    pub(super) permits: Arc<tokio::sync::Semaphore>,
}

impl Step for Bulkhead {
    fn call<S: Inner>(&self, inner: &mut S, req: RemoteRequest) -> Answer {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let (module, limit) = (self.module, self.limit);
            crate::metrics::record_refused(module, "bulkhead");
            return Box::pin(async move { Err(RemoteError::Overloaded { module, limit }) });
        };
        let fut = inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            drop(permit);
            result
        })
    }
}
