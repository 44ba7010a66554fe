//! Online Boutique's gRPC wire contract (`src/grpc/demo.proto`, package `hipstershop`) served
//! on `server.grpc_listen`, for the modules this process hosts, through the same call path as
//! REST (each call passes the module's contract with its layers: spans, metrics).
//!
//! Served so far: `ProductCatalogService` (catalog) and `CurrencyService` (currency), whose
//! operations anyone may call, as over REST; standard gRPC health checking
//! (`grpc.health.v1.Health`, one status per service) and server reflection (v1). The other
//! seven services of the proto act for a user (carts, orders, charges): they wait for the
//! trust switch the gRPC issue describes (Boutique's services send no credentials), and are
//! not served. A request's `x-request-id` and `grpc-timeout` become its call context's id and
//! deadline; a contract's error becomes the gRPC status of its HTTP status (404 `NOT_FOUND`,
//! 400 `INVALID_ARGUMENT`, 503 `UNAVAILABLE`, ...), its stable code in the `cleave-code`
//! metadata.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_api::{CatalogApi, CatalogContract, Product};
use cleave_domain::{Money, ProductId};
use cleave_kernel::CallContext;
use cleave_kernel::context::{REQUEST_ID_HEADER, RequestId};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::{Assembly, Contract};
use currency_api::{CurrencyApi, CurrencyContract};
use tonic::{Request, Response, Status};

/// The code generated from `src/grpc/demo.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod hipstershop {
    tonic::include_proto!("hipstershop");

    /// The encoded descriptors of the proto, for server reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("hipstershop_descriptor");
}

use hipstershop::currency_service_server::{CurrencyService, CurrencyServiceServer};
use hipstershop::product_catalog_service_server::{
    ProductCatalogService, ProductCatalogServiceServer,
};

/// The caller name of gRPC requests on the call path (like `edge` for REST).
const CALLER: &str = "grpc";

/// The call context of a gRPC request: its `x-request-id` (or a new one) and the deadline
/// its `grpc-timeout` gives (none without one).
fn context<T>(req: &Request<T>) -> CallContext {
    let meta = req.metadata();
    let id = RequestId::from_header(meta.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    let deadline = meta
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
        .map(|budget| Instant::now() + budget);
    CallContext::new(id, deadline)
}

/// A `grpc-timeout` value (at most 8 digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A contract's error as a gRPC status: the code that matches its HTTP status, its message,
/// and its stable code in the `cleave-code` metadata.
fn status<E: ApiError>(err: &E) -> Status {
    use tonic::Code;
    let code = match err.status_u16() {
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, err.to_string());
    if let Ok(value) = err.code().parse() {
        status.metadata_mut().insert("cleave-code", value);
    }
    status
}

fn money_out(m: Money) -> hipstershop::Money {
    hipstershop::Money {
        currency_code: m.currency_code,
        units: m.units,
        nanos: m.nanos,
    }
}

fn product_out(p: Product) -> hipstershop::Product {
    hipstershop::Product {
        id: p.id.to_string(),
        name: p.name,
        description: p.description,
        picture: p.picture,
        price_usd: Some(money_out(p.price_usd)),
        categories: p.categories,
    }
}

/// `ProductCatalogService` over the catalog contract.
struct Catalog(Arc<dyn CatalogApi>);

#[tonic::async_trait]
impl ProductCatalogService for Catalog {
    async fn list_products(
        &self,
        req: Request<hipstershop::Empty>,
    ) -> Result<Response<hipstershop::ListProductsResponse>, Status> {
        let products = self.0.list_products(&context(&req)).await;
        let products = products.map_err(|e| status(&e))?;
        Ok(Response::new(hipstershop::ListProductsResponse {
            products: products.into_iter().map(product_out).collect(),
        }))
    }

    async fn get_product(
        &self,
        req: Request<hipstershop::GetProductRequest>,
    ) -> Result<Response<hipstershop::Product>, Status> {
        let ctx = context(&req);
        let id = ProductId::parse(req.into_inner().id).map_err(|e| {
            status(&catalog_api::CatalogError::InvalidProductId {
                detail: e.to_string(),
            })
        })?;
        let product = self.0.get_product(&ctx, id).await.map_err(|e| status(&e))?;
        Ok(Response::new(product_out(product)))
    }

    async fn search_products(
        &self,
        req: Request<hipstershop::SearchProductsRequest>,
    ) -> Result<Response<hipstershop::SearchProductsResponse>, Status> {
        let ctx = context(&req);
        let query = req.into_inner().query;
        let found = self.0.search_products(&ctx, query).await;
        let found = found.map_err(|e| status(&e))?;
        Ok(Response::new(hipstershop::SearchProductsResponse {
            results: found.into_iter().map(product_out).collect(),
        }))
    }
}

/// `CurrencyService` over the currency contract.
struct Currency(Arc<dyn CurrencyApi>);

#[tonic::async_trait]
impl CurrencyService for Currency {
    async fn get_supported_currencies(
        &self,
        req: Request<hipstershop::Empty>,
    ) -> Result<Response<hipstershop::GetSupportedCurrenciesResponse>, Status> {
        let codes = self.0.supported_currencies(&context(&req)).await;
        let codes = codes.map_err(|e| status(&e))?;
        Ok(Response::new(hipstershop::GetSupportedCurrenciesResponse {
            currency_codes: codes.into_iter().map(String::from).collect(),
        }))
    }

    async fn convert(
        &self,
        req: Request<hipstershop::CurrencyConversionRequest>,
    ) -> Result<Response<hipstershop::Money>, Status> {
        let ctx = context(&req);
        let hipstershop::CurrencyConversionRequest { from, to_code } = req.into_inner();
        let invalid =
            |detail: String| status(&currency_api::CurrencyError::InvalidMoney { detail });
        let from = from.ok_or_else(|| invalid("`from` is missing".into()))?;
        let from =
            Money::new(&from.currency_code, from.units, from.nanos).map_err(|e| invalid(e.0))?;
        let converted = self.0.convert(&ctx, from, to_code).await;
        Ok(Response::new(money_out(converted.map_err(|e| status(&e))?)))
    }
}

/// Binds `addr` for [`serve`] (in `wiring::bind`, so that the port is taken, or the error
/// known, before the process says it is ready).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context as _;
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (server.grpc_listen)"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves Boutique's services of the modules this process hosts, health and reflection, on
/// `listener` (from [`bind`]) until `stop` completes.
///
/// # Errors
/// When the listener cannot be used or the reflection service cannot be built.
pub async fn serve(
    listener: std::net::TcpListener,
    assembly: &Assembly,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let hosted = assembly.plan().hosted();
    let here = |module: &str| hosted.contains(&module);
    let mut routes = tonic::service::Routes::builder();
    let mut served = vec!["grpc.health.v1.Health"];
    if here(CatalogContract::MODULE)
        && let Some(api) = assembly.api::<CatalogContract>(CALLER)
    {
        routes.add_service(ProductCatalogServiceServer::new(Catalog(api)));
        health
            .set_serving::<ProductCatalogServiceServer<Catalog>>()
            .await;
        served.push("hipstershop.ProductCatalogService");
    }
    if here(CurrencyContract::MODULE)
        && let Some(api) = assembly.api::<CurrencyContract>(CALLER)
    {
        routes.add_service(CurrencyServiceServer::new(Currency(api)));
        health
            .set_serving::<CurrencyServiceServer<Currency>>()
            .await;
        served.push("hipstershop.CurrencyService");
    }
    // Reflection lists what is served (the proto describes all nine services), in both
    // versions: grpcurl asks v1 first, older clients only v1alpha.
    let reflection = || {
        served.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(hipstershop::DESCRIPTOR)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(*name),
        )
    };
    routes
        .add_service(health_service)
        .add_service(reflection().build_v1().context("gRPC reflection")?)
        .add_service(reflection().build_v1alpha().context("gRPC reflection")?);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, stop);
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the gRPC server failed");
        }
    });
    tracing::info!(addr = %bound, "serving gRPC");
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_their_units() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(grpc_timeout("S"), None);
        assert_eq!(grpc_timeout("10x"), None);
        assert_eq!(grpc_timeout("123456789S"), None, "at most 8 digits");
    }
}
