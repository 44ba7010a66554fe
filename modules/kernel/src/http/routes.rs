//! A contract's routes, registered from its operation table: each route's path and method are
//! the operation's, written once in the contract (`#[op(GET "/products/{id}", ..)]`).

use std::sync::Arc;

use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};

use crate::call::{HttpMethod, Operation};
use crate::error::{Failure, KernelError};

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
            None => self.resources.push((
                op.path,
                vec![op.method],
                Some(web::resource(op.path).route(route)),
            )),
        }
        self
    }

    /// Registers the routes on `cfg`, each answering from `api` (handlers take it as
    /// `web::Data<dyn ..Api>`).
    pub fn register<A: ?Sized + Send + Sync + 'static>(
        self,
        cfg: &mut web::ServiceConfig,
        api: Arc<A>,
    ) {
        let data = web::Data::from(api);
        for (_, methods, resource) in self.resources {
            let Some(resource) = resource else { continue };
            let allow = methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            cfg.service(
                resource
                    .app_data(data.clone())
                    .default_service(web::to(move || {
                        let allow = allow.clone();
                        async move { method_not_allowed(&allow) }
                    })),
            );
        }
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
