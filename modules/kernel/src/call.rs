//! The call path: the one place every call of a contract operation passes through, local or
//! remote, so that a policy (a span, a metric, a limit, a breaker) can see it without knowing
//! the module.
//!
//! Each contract declares its operations once (`#[contract]`): an [`Operation`] names its
//! module, its route and whether it is safe to repeat ([`Repeat`]). The composition root gives
//! every dependency of a module a [`CallPath`] (caller, callee, [`Locality`] and the process's
//! [`CallLayer`]s) and wraps the dependency's contract object with it; forwarded routes pass
//! the same point. With no layer installed a call costs one more boxed future than a bare
//! trait call (see docs/BENCHMARKS.md).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::CallContext;
use crate::error::{ApiError, Refusal};

/// Bytes percent-encoded in a path segment: all but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The HTTP method of an operation's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
}

impl HttpMethod {
    /// The method's name, as on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
        }
    }

    /// The method named `name` (upper case), if it is one of these.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "PATCH" => Self::Patch,
            _ => return None,
        })
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an operation may be sent again when the first attempt's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repeat {
    /// Reads only: repeating changes nothing.
    ReadOnly,
    /// Writes, but a repeat has the same effect as one call (a `PUT`, a `DELETE`, emptying).
    Idempotent,
    /// Safe to repeat when the call carries its idempotency key or reference (the client says
    /// so per call); not otherwise.
    Keyed,
    /// Never repeated: a second call would act twice.
    Once,
}

impl Repeat {
    /// Whether a call of this kind is safe to repeat; `keyed` is whether the call carries its
    /// key or reference.
    pub const fn is_safe(self, keyed: bool) -> bool {
        match self {
            Self::ReadOnly | Self::Idempotent => true,
            Self::Keyed => keyed,
            Self::Once => false,
        }
    }

    /// The name used in docs and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::Idempotent => "idempotent",
            Self::Keyed => "keyed",
            Self::Once => "once",
        }
    }
}

/// Who may call an operation over the network. An operation lists the kinds of caller it
/// admits; a call is admitted when it is any one of them. Calls between modules of one
/// process are not checked: the module graph (what each module may require) decides those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Anyone,
    /// Any caller with a valid access token: a user's or a guest's.
    SignedIn,
    /// The user the call is about: the token's subject is the operation's owner (a user id in
    /// its path, query or body, named in `#[op(.., access(owner(..)))]`).
    Owner,
    /// A shop administrator.
    Admin,
    /// This module of the deployment (from another process: proven by its certificate).
    Module(&'static str),
    /// Any module of the deployment.
    AnyModule,
}

impl Access {
    /// Its name in the API document's `x-cleave-access` (`anyone`, `signed_in`, `owner`,
    /// `admin`, `module:<name>`, `any_module`).
    pub fn key(&self) -> String {
        match self {
            Self::Anyone => "anyone".into(),
            Self::SignedIn => "signed_in".into(),
            Self::Owner => "owner".into(),
            Self::Admin => "admin".into(),
            Self::Module(m) => format!("module:{m}"),
            Self::AnyModule => "any_module".into(),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anyone => f.write_str("anyone"),
            Self::SignedIn => f.write_str("any signed-in caller (user or guest token)"),
            Self::Owner => f.write_str("the owner"),
            Self::Admin => f.write_str("admins"),
            Self::Module(m) => write!(f, "the {m} module"),
            Self::AnyModule => f.write_str("any module of the deployment"),
        }
    }
}

/// Whether a call of `op` made with `ctx` is admitted, `owner` being the user the call is
/// about (for [`Access::Owner`]).
///
/// # Errors
/// [`Refusal::Unauthenticated`] for a caller with no token and no certificate,
/// [`Refusal::Forbidden`] for one who is not among those admitted.
pub fn admit(op: &Operation, ctx: &CallContext, owner: Option<&str>) -> Result<(), Refusal> {
    let principal = ctx.principal();
    let modules = ctx.caller_modules().unwrap_or_default();
    let admitted = op.access.iter().any(|access| match access {
        Access::Anyone => true,
        Access::SignedIn => principal.is_some(),
        Access::Owner => principal.zip(owner).is_some_and(|(p, o)| p.subject == o),
        Access::Admin => principal.is_some_and(crate::context::Principal::is_admin),
        Access::Module(m) => modules.contains(m),
        Access::AnyModule => !modules.is_empty(),
    });
    if admitted {
        Ok(())
    } else if principal.is_none() && modules.is_empty() {
        Err(Refusal::Unauthenticated(format!(
            "{} needs an access token",
            op.id
        )))
    } else {
        let admits: Vec<String> = op.access.iter().map(ToString::to_string).collect();
        Err(Refusal::Forbidden(format!(
            "{} is for {}",
            op.id,
            admits.join(", ")
        )))
    }
}

/// One operation of a contract, declared once with the contract's trait (`#[contract]`): its
/// name, route, repeat-safety, who may call it and the contract errors it may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The module whose contract it belongs to.
    pub module: &'static str,
    /// The trait method's name, e.g. `get_product`.
    pub name: &'static str,
    /// `<module>.<name>`, e.g. `catalog.get_product`: how calls name it on the wire and in
    /// logs.
    pub id: &'static str,
    /// The route's method.
    pub method: HttpMethod,
    /// The route's path template, whole, e.g. `/api/catalog/v1/products/{id}`.
    pub path: &'static str,
    /// Whether it is safe to repeat.
    pub repeat: Repeat,
    /// Whether callers in other processes may keep its answers (a read of data read far more
    /// often than it changes): until the module publishes an event saying that resource (or
    /// any of its data) changed, until the caller itself writes to that resource, or for
    /// the module's `cache_ttl_ms` (else `remote.cache_ttl_ms`) at most. The answer of an operation not everyone may call is
    /// kept for the one who asked only. In one process calls are plain calls.
    pub cached: bool,
    /// Who may call it (any one of these).
    pub access: &'static [Access],
    /// For [`Access::Owner`]: the argument or body field holding the user the call is about
    /// (`user_id`).
    pub owner: Option<&'static str>,
    /// The codes of the contract errors it may answer (besides `<module>.unavailable`).
    pub errors: &'static [&'static str],
    /// The first sentence of its documentation.
    pub summary: &'static str,
}

impl Operation {
    /// The route's path with `params` put into its `{...}` segments in order, each
    /// percent-encoded.
    ///
    /// # Panics
    /// In debug builds, when the number of params differs from the template's (a bug in the
    /// contract's client, caught by its contract suite).
    pub fn path_with(&self, params: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len() + 16);
        let mut rest = self.path;
        let mut params = params.iter();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            if let Some(value) = params.next() {
                out.extend(percent_encoding::utf8_percent_encode(value, SEGMENT));
            } else {
                debug_assert!(false, "{} needs more path params", self.path);
            }
            rest = &rest[close..];
        }
        debug_assert!(params.next().is_none(), "{} has fewer params", self.path);
        out.push_str(rest);
        out
    }

    /// Whether this operation's route matches `method` and `path` (a concrete path, without
    /// query).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if method != self.method.as_str() {
            return false;
        }
        // Segment by segment over the bytes (a forwarded request asks every operation of its
        // module; splitting both paths cost more than the rest of the forwarding handler).
        let (mut template, mut concrete) = (self.path.as_bytes(), path.as_bytes());
        loop {
            let t_end = template.iter().position(|&b| b == b'/');
            let c_end = concrete.iter().position(|&b| b == b'/');
            let t = &template[..t_end.unwrap_or(template.len())];
            let c = &concrete[..c_end.unwrap_or(concrete.len())];
            let same = if t.first() == Some(&b'{') {
                !c.is_empty()
            } else {
                t == c
            };
            match (same, t_end, c_end) {
                (true, None, None) => return true,
                (true, Some(t), Some(c)) => {
                    template = &template[t + 1..];
                    concrete = &concrete[c + 1..];
                }
                _ => return false,
            }
        }
    }
}

/// Whether the callee runs in this process or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locality {
    /// In this process: a plain async call.
    Local,
    /// In another process: over the remote-call pipeline.
    Remote,
}

impl Locality {
    /// `local` or `remote`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// Who calls what, as a layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// The calling module, or [`EDGE`] for a request that came in over HTTP.
    pub caller: &'static str,
    /// The called module.
    pub callee: &'static str,
    /// The operation.
    pub op: &'static Operation,
    /// Where the callee runs.
    pub locality: Locality,
    /// The call's context (request id, deadline, principal).
    pub ctx: &'a CallContext,
}

/// The caller name of calls made for requests that came in over HTTP (a module's own routes,
/// or routes forwarded to the process hosting the module).
pub const EDGE: &str = "edge";

/// How a call ended, as a layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// The callee answered an error of its contract.
    Failed {
        /// The error's code.
        code: &'static str,
        /// The error's HTTP status.
        status: u16,
    },
    /// A layer refused the call before it reached the callee.
    Refused {
        /// Why, for the caller's `unavailable` error.
        reason: String,
    },
}

impl Outcome {
    fn of<T, E: ApiError>(result: &Result<T, E>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::Failed {
                code: e.code(),
                status: e.status_u16(),
            },
        }
    }
}

/// The rest of the path after a layer: the next layers, then the call itself.
pub struct Next<'a> {
    layers: &'a [Arc<dyn CallLayer>],
    call: &'a CallInfo<'a>,
    inner: BoxFuture<'a, Outcome>,
}

impl<'a> Next<'a> {
    /// Runs the rest of the path. A layer that never calls this refuses the call.
    pub fn run(self) -> BoxFuture<'a, Outcome> {
        match self.layers.split_first() {
            None => self.inner,
            Some((layer, rest)) => layer.around(
                self.call,
                Next {
                    layers: rest,
                    call: self.call,
                    inner: self.inner,
                },
            ),
        }
    }
}

/// A policy on the call path: runs around every call of every contract operation of the
/// process (local and remote), e.g. to time it, trace it, or refuse it.
pub trait CallLayer: Send + Sync + 'static {
    /// Runs around one call: do what comes before, `next.run().await`, do what comes after,
    /// and return the outcome (or refuse without running `next`).
    fn around<'a>(&'a self, call: &'a CallInfo<'a>, next: Next<'a>) -> BoxFuture<'a, Outcome>;
}

/// The layers every call of a process passes, outermost first. Cheap to clone.
#[derive(Clone, Default)]
pub struct CallLayers(Arc<[Arc<dyn CallLayer>]>);

impl CallLayers {
    /// The given layers, outermost first.
    pub fn new(layers: Vec<Arc<dyn CallLayer>>) -> Self {
        Self(layers.into())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CallLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallLayers({})", self.0.len())
    }
}

/// The path of the calls from one caller to one callee: every call of the callee's
/// operations made by the caller passes [`CallPath::run`].
#[derive(Debug, Clone)]
pub struct CallPath {
    caller: &'static str,
    callee: &'static str,
    locality: Locality,
    layers: CallLayers,
}

impl CallPath {
    /// The path from `caller` to `callee` running at `locality`, through `layers`.
    pub fn new(
        caller: &'static str,
        callee: &'static str,
        locality: Locality,
        layers: CallLayers,
    ) -> Self {
        Self {
            caller,
            callee,
            locality,
            layers,
        }
    }

    /// The calling module.
    pub fn caller(&self) -> &'static str {
        self.caller
    }

    /// The called module.
    pub fn callee(&self) -> &'static str {
        self.callee
    }

    /// Whether calls on this path came in over the network ([`EDGE`]), so that each
    /// operation's [`Access`] decides whether they are admitted.
    pub fn checks_access(&self) -> bool {
        self.caller == EDGE
    }

    /// Where the callee runs.
    pub fn locality(&self) -> Locality {
        self.locality
    }

    /// Runs `call` (the operation `op` made with `ctx`) through the layers. A call a layer
    /// refuses fails with the contract's `unavailable` error.
    pub async fn run<T, E, F>(
        &self,
        op: &'static Operation,
        ctx: &CallContext,
        call: F,
    ) -> Result<T, E>
    where
        T: Send,
        E: ApiError,
        F: Future<Output = Result<T, E>> + Send,
    {
        if self.layers.is_empty() {
            return call.await;
        }
        let info = CallInfo {
            caller: self.caller,
            callee: self.callee,
            op,
            locality: self.locality,
            ctx,
        };
        let mut result = None;
        let outcome = {
            let inner = Box::pin(async {
                let r = call.await;
                let outcome = Outcome::of(&r);
                result = Some(r);
                outcome
            });
            Next {
                layers: &self.layers.0,
                call: &info,
                inner,
            }
            .run()
            .await
        };
        match (result, outcome) {
            (Some(r), _) => r,
            (None, Outcome::Refused { reason }) => Err(E::unavailable(reason)),
            (None, _) => Err(E::unavailable(format!(
                "a call layer dropped {} without an outcome",
                op.id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: Operation = Operation {
        module: "catalog",
        name: "get_product",
        id: "catalog.get_product",
        method: HttpMethod::Get,
        path: "/api/catalog/v1/products/{id}",
        repeat: Repeat::ReadOnly,
        cached: false,
        access: &[Access::Anyone],
        owner: None,
        errors: &[],
        summary: "",
    };

    #[test]
    fn path_params_are_put_in_order_and_encoded() {
        assert_eq!(
            GET.path_with(&["a b/c"]),
            "/api/catalog/v1/products/a%20b%2Fc"
        );
        let nested = Operation {
            path: "/api/x/v1/a/{one}/b/{two}",
            ..GET
        };
        assert_eq!(nested.path_with(&["1", "2"]), "/api/x/v1/a/1/b/2");
    }

    #[test]
    fn routes_match_their_method_and_segments() {
        assert!(GET.matches("GET", "/api/catalog/v1/products/OLJCESPC7Z"));
        assert!(!GET.matches("PUT", "/api/catalog/v1/products/OLJCESPC7Z"));
        assert!(!GET.matches("GET", "/api/catalog/v1/products"));
        assert!(!GET.matches("GET", "/api/catalog/v1/products/"));
        assert!(!GET.matches("GET", "/api/catalog/v1/products/a/b"));
    }

    #[test]
    fn keyed_operations_are_safe_only_with_their_key() {
        assert!(Repeat::ReadOnly.is_safe(false));
        assert!(Repeat::Idempotent.is_safe(false));
        assert!(Repeat::Keyed.is_safe(true));
        assert!(!Repeat::Keyed.is_safe(false));
        assert!(!Repeat::Once.is_safe(true));
    }

    fn ctx_of(subject: Option<&str>, roles: &[&str], modules: &[&'static str]) -> CallContext {
        let mut ctx = CallContext::root();
        if let Some(subject) = subject {
            ctx = ctx.with_principal(crate::context::Principal {
                subject: subject.into(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                access_token: None,
            });
        }
        if !modules.is_empty() {
            ctx = ctx.with_caller_modules(modules.into());
        }
        ctx
    }

    #[test]
    fn a_call_is_admitted_by_any_one_of_the_operations_access_rules() {
        let op = Operation {
            access: &[Access::Owner, Access::Admin, Access::Module("checkout")],
            ..GET
        };
        let admitted = |ctx: &CallContext| admit(&op, ctx, Some("alice")).is_ok();
        assert!(
            admitted(&ctx_of(Some("alice"), &["shopper"], &[])),
            "the owner"
        );
        assert!(admitted(&ctx_of(Some("ops"), &["admin"], &[])), "an admin");
        assert!(
            admitted(&ctx_of(None, &[], &["checkout"])),
            "checkout's certificate"
        );
        assert!(matches!(
            admit(&op, &ctx_of(None, &[], &[]), Some("alice")),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            admit(&op, &ctx_of(Some("bob"), &["shopper"], &[]), Some("alice")),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            admit(&op, &ctx_of(None, &[], &["ads"]), Some("alice")),
            Err(Refusal::Forbidden(_))
        ));
        let anyone = Operation {
            access: &[Access::Anyone],
            ..GET
        };
        assert!(admit(&anyone, &ctx_of(None, &[], &[]), None).is_ok());
    }
}
