//! A contract's routes, registered from its operation table: each route's path and method are
//! the operation's, written once in the contract (`#[op(GET "/products/{id}", ..)]`); and what
//! their handlers share: [`Call`] (the call's context and the contract object) and the
//! answers ([`ok`], [`created`], [`no_content`]).

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{ALLOW, ContentType, HeaderValue, LOCATION};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, web};
use serde::Serialize;

use crate::call::{HttpMethod, Operation};
use crate::context::CallContext;
use crate::error::{Failure, KernelError};

/// What a route handler answers.
pub type Reply = Result<HttpResponse, Failure>;

/// A handler's call: its context (request id, deadline, principal) and the contract object
/// the routes were registered with.
pub struct Call<A: ?Sized> {
    /// The call's context.
    pub ctx: CallContext,
    /// The contract object (the module where it is hosted).
    pub api: Arc<A>,
}

impl<A: ?Sized + 'static> FromRequest for Call<A> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let ctx = match CallContext::from_request(req, payload).into_inner() {
            Ok(ctx) => ctx,
            Err(e) => return ready(Err(e)),
        };
        ready(match req.app_data::<web::Data<A>>() {
            Some(api) => Ok(Self {
                ctx,
                api: api.clone().into_inner(),
            }),
            None => Err(Failure::from(KernelError::Internal).into()),
        })
    }
}

/// 200 with `body` as JSON.
pub fn ok(body: impl Serialize) -> Reply {
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(json(&body)?))
}

/// `body` as JSON, written into a buffer sized for a typical answer (one product is about
/// 300 bytes): growing from empty cost a catalog read four reallocations.
fn json(body: &impl Serialize) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::with_capacity(512);
    serde_json::to_writer(&mut buf, body).map_err(|e| {
        tracing::error!(error = %e, "answer cannot be written as JSON");
        Failure::from(KernelError::Internal)
    })?;
    Ok(buf)
}

/// 201 with `body` as JSON and `Location: location`.
pub fn created(location: String, body: impl Serialize) -> Reply {
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location))
        .insert_header(ContentType::json())
        .body(json(&body)?))
}

/// 204.
pub fn no_content() -> Reply {
    Ok(HttpResponse::NoContent().finish())
}

/// The routes of one contract, grouped by path (one actix resource per path, one route per
/// method), answering 405 with `Allow` for the other methods.
pub struct Routes {
    module: &'static str,
    resources: Vec<(&'static str, Vec<HttpMethod>, Option<Resource>)>,
}

impl Routes {
    /// No routes yet for `module`.
    pub fn new(module: &'static str) -> Self {
        Self {
            module,
            resources: Vec::new(),
        }
    }

    /// Serves `op`'s route with `handler`.
    ///
    /// # Panics
    /// When `op` belongs to another module, or its route is already served: a contract's
    /// routes are declared wrong (caught by its first test).
    pub fn add<F, Args>(&mut self, op: &'static Operation, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        assert_eq!(
            op.module, self.module,
            "{} is not an operation of {}",
            op.name, self.module
        );
        let method = actix_web::http::Method::from_bytes(op.method.as_str().as_bytes())
            .unwrap_or(actix_web::http::Method::GET);
        let route = web::method(method).to(handler);
        match self
            .resources
            .iter_mut()
            .find(|(path, ..)| *path == op.path)
        {
            Some((_, methods, resource)) => {
                assert!(
                    !methods.contains(&op.method),
                    "{} {} is served twice",
                    op.method,
                    op.path
                );
                methods.push(op.method);
                *resource = resource.take().map(|r| r.route(route));
            }
            None => {
                let prefix = format!("/api/{}/v1", self.module);
                let relative = op.path.strip_prefix(&prefix).unwrap_or(op.path);
                self.resources.push((
                    op.path,
                    vec![op.method],
                    Some(
                        web::resource(relative)
                            .app_data(crate::metrics::RouteTemplate(op.path))
                            .route(route),
                    ),
                ));
            }
        }
        self
    }

    /// Registers the routes on `cfg` under one scope, `/api/<module>/v1` (the router then
    /// checks one prefix per module, not every route), each answering from `api` (handlers
    /// take it through [`Call`]).
    pub fn register<A: ?Sized + Send + Sync + 'static>(
        self,
        cfg: &mut web::ServiceConfig,
        api: Arc<A>,
    ) {
        let data = web::Data::from(api);
        let mut scope = web::scope(&format!("/api/{}/v1", self.module));
        for (_, methods, resource) in self.resources {
            let Some(resource) = resource else { continue };
            let allow = methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            scope = scope.service(resource.app_data(data.clone()).default_service(web::to(
                move || {
                    let allow = allow.clone();
                    async move { method_not_allowed(&allow) }
                },
            )));
        }
        cfg.service(scope);
    }
}

/// 405 problem+json with the route's methods in `Allow`.
fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut res =
        actix_web::ResponseError::error_response(&Failure::from(KernelError::MethodNotAllowed));
    if let Ok(v) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(ALLOW, v);
    }
    res
}
