//! Cleave's macros: a contract's errors and operations are declared once, and everything that
//! depends on them (wire codes, statuses, the problem round trip, the OpenAPI responses, route
//! paths, the call path's operation table and its interception) is derived here.
//!
//! - `#[derive(ApiError)]` on a contract's error enum: each variant's code, status and
//!   description in one place (see `cleave_kernel::error::ApiError`).
//! - `#[contract(...)]` on a contract trait: each method's route and repeat-safety in one
//!   place (see `cleave_kernel::module::Contract`).
//! - `#[module(...)]` on a module implementation: what it implements, owns, requires and how
//!   it starts, in one place (see `cleave_kernel::module::Module`).
//!
//! Generated code names the kernel as `::cleave_kernel`, so the crates using these macros
//! depend on it (the kernel itself says `extern crate self as cleave_kernel`).

mod contract;
mod errors;
mod module;

use proc_macro::TokenStream;

/// Derives `cleave_kernel::error::ApiError`, `serde::Serialize` and `serde::Deserialize` for a
/// contract's error enum.
///
/// ```ignore
/// #[derive(Debug, Clone, thiserror::Error, ApiError)]
/// #[api(module = "catalog")]
/// pub enum CatalogError {
///     /// No product has this id.
///     #[api(status = 404)]
///     #[error("product {id} not found")]
///     ProductNotFound { id: String },
///     /// The catalog cannot be reached.
///     #[api(unavailable)]
///     #[error("catalog is unavailable: {reason}")]
///     Unavailable { reason: String },
///     /// A bug in the catalog.
///     #[api(internal)]
///     #[error("catalog internal error: {reason}")]
///     Internal { reason: String },
/// }
/// ```
///
/// Each variant's wire code is `<module>.<variant in snake_case>` (or `#[api(code = "..")]`),
/// its description its doc comment. `unavailable` variants are 503 and `internal` ones 500;
/// their fields are logged, never sent (unless the variant says `expose`). A field marked
/// `#[api(hidden)]` is never sent either. A field named `retry_after_secs` is also sent as the
/// answer's `Retry-After` header. The wire form is `{"code": .., "params": {..}}`.
#[proc_macro_derive(ApiError, attributes(api))]
pub fn derive_api_error(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    errors::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A contract's error enum: `#[derive(ApiError)]` (with `Debug`, `Clone`, `PartialEq`, `Eq`
/// and `thiserror::Error`) on the enum as written plus the failures every contract shares,
/// declared here once: `Refused { refusal }` (401/403), `Unavailable { reason, upstream }`
/// (503, or a dependency's failure passed on as itself) and `Internal { reason }` (500).
///
/// ```ignore
/// #[contract_error(module = "catalog")]
/// pub enum CatalogError {
///     /// No product has this id.
///     #[api(status = 404)]
///     #[error("product {id} not found")]
///     ProductNotFound { id: String },
/// }
/// ```
///
/// `unavailable = ".."` words the 503's description where the default says too little. A
/// variant the enum declares itself with `#[api(refused)]`, `#[api(unavailable)]` or
/// `#[api(internal)]` replaces the shared one. The crate depends on `thiserror`.
#[proc_macro_attribute]
pub fn contract_error(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemEnum);
    errors::contract_error(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a module's contract trait and derives its operation table, its interception
/// point, its API document, its client type and its `cleave_kernel::module::Contract`
/// descriptor.
///
/// ```ignore
/// #[contract(module = "catalog", error = CatalogError, client = CatalogClient, http = http)]
/// pub trait CatalogApi: Send + Sync {
///     /// One product.
///     #[op(GET "/products/{id}", read_only, errors(ProductNotFound, InvalidProductId))]
///     #[rest(
///         params(("id" = String, Path, description = "Product id")),
///         responses((status = 200, description = "The product", body = Product)),
///     )]
///     async fn get_product(&self, ctx: &CallContext, id: ProductId)
///         -> Result<Product, CatalogError>;
/// }
/// ```
///
/// Every method is an operation: its route (method and path under `/api/<module>/v1`), how
/// safe it is to repeat (`read_only`, `idempotent`, `keyed(<key>)`: safe when the call carries
/// its key or reference, `<key>` being the argument or field holding it as an `Option`, `once`:
/// never repeated), and the contract errors it may answer besides
/// `unavailable`. `#[rest(..)]` documents the route (the arguments of `utoipa::path` other
/// than the method, path and tag, which come from `#[op]`; error responses come from the
/// error table); operations sharing a route document it once.
///
/// Generated: `pub mod ops` (one `Operation` constant per method, `ALL`, and the API
/// document), the trait (with `async_trait`), the client struct named by `client` (holding a
/// `RemoteClient`; its trait impl is written by hand), the contract's gRPC service (a
/// dispatcher and a client, written from the signatures; see `cleave_kernel::grpc`), and `pub
/// struct <Module>Contract`, the contract's descriptor, whose routes are `<http>::routes`.
#[proc_macro_attribute]
pub fn contract(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemTrait);
    contract::expand(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Describes a module implementation in one attribute on its struct and derives its
/// `cleave_kernel::module::Module` impl (and `ModuleConfig` for its config, unless the module
/// says `validates` and implements it to check values).
///
/// ```ignore
/// #[module(contract = cart_api::CartContract, config = CartConfig, owns = "carts")]
/// pub struct CartModule { .. }
///
/// impl CartModule {
///     async fn from_start(start: Start<'_, CartConfig>) -> Result<Arc<Self>, StartError> {
///         Ok(Self::new(start.db()?, start.config(), CartDeps))
///     }
/// }
/// ```
///
/// `requires = ["catalog"]`, `subscribes = ["checkout"]` and `publishes = [TOPIC]` name what
/// it calls, whose events it consumes and what it publishes; `announces` says that every
/// change of what its operations answer is published as one of those events (callers in
/// other processes may then keep its answers longer: `remote.announced_cache_ttl_ms`).
/// `start = <expr>` starts it
/// (`start`, the module's `Start`, is in scope; the expression may `.await` and gives a
/// `Result<Arc<Self>, StartError>`); without it, `Self::from_start(start).await`.
#[proc_macro_attribute]
pub fn module(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemStruct);
    module::expand(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
