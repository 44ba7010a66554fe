//! gRPC on `server.grpc_listen`: Cleave's own services and Online Boutique's wire contract.
//!
//! - Every contract this process hosts as Cleave's own service, `cleave.<module>.v1.<Module>`
//!   (see [`cleave_kernel::grpc`]): what other Cleave processes call when their
//!   `modules.<m>.url` is `grpc://` (`grpcs://`). With `server.tls`, the listener speaks TLS
//!   with the same certificate, and a module certificate proves the caller as over REST.
//! - Boutique's services (`src/grpc/demo.proto`, package `hipstershop`) of every module this
//!   process reaches, hosted or remote, through the same call path as REST, as requests from
//!   outside (each call passes the module's contract with its layers, and each operation's
//!   access rules decide here, as over REST): `ProductCatalogService`, `CurrencyService`,
//!   `RecommendationService`, `AdService`, `ShippingService`, `CartService`,
//!   `PaymentService`, `CheckoutService` and `EmailService`. Reads anyone may make answer
//!   anyone; the rest
//!   need what REST needs: a cart or an order its owner's (or an admin's) access token as
//!   `authorization: Bearer <token>` metadata, a charge or a shipment checkout. Boutique's own
//!   services send no credentials: with `server.grpc_trusted` every caller is taken as the
//!   deployment's modules; without it, calls without a token get `UNAUTHENTICATED`.
//!
//! Both kinds come with standard gRPC health checking (`grpc.health.v1.Health`, one status per
//! service) and server reflection (v1, v1alpha). A request's `x-request-id` and
//! `grpc-timeout` become its call context's id and deadline; a contract's error becomes the
//! gRPC status of its HTTP status (404 `NOT_FOUND`, 400 `INVALID_ARGUMENT`, 401
//! `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 503 `UNAVAILABLE`, ...), its stable code in the
//! `cleave-code` trailer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ads_api::{AdsApi, AdsContract, AdsRequest};
use cart_api::{CartApi, CartContract, CartError};
use catalog_api::{CatalogApi, CatalogContract, Product};
use checkout_api::{CheckoutApi, CheckoutContract, IdempotencyKey, PlaceOrderRequest};
use cleave_domain::{Address, CreditCard, CurrencyCode, Money, ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::call::EDGE;
use cleave_kernel::client::RemoteClient;
use cleave_kernel::error::ApiError;
use cleave_kernel::module::{Assembly, Contract as _};
use currency_api::{CurrencyApi, CurrencyContract};
use email_api::{EmailApi, EmailContract};
use payment_api::{ChargeRequest, PaymentApi, PaymentContract};
use recommendation_api::{RecommendationApi, RecommendationContract, RecommendationError};
use shipping_api::{QuoteRequest, ShipOrderRequest, ShippingApi, ShippingContract, ShippingItem};
use tonic::{Request, Response, Status};

/// The code generated from `src/grpc/demo.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod hipstershop {
    tonic::include_proto!("hipstershop");

    /// The encoded descriptors of the proto, for server reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("hipstershop_descriptor");
}

use hipstershop::currency_service_server::CurrencyService;
use hipstershop::product_catalog_service_server::ProductCatalogService;

use cleave_kernel::grpc::{Edge, status};

/// How the gRPC listener treats its calls (from `[server]`).
#[derive(Debug, Clone)]
pub struct Options {
    /// `server.grpc_trusted`: a call without credentials is the deployment's modules'.
    pub trusted: bool,
    /// `server.handler_timeout_ms`: the longest a call may take, as over REST (a sooner
    /// `grpc-timeout` wins); past it, `DEADLINE_EXCEEDED`.
    pub handler_timeout: Duration,
    /// `server.max_body_bytes`: the largest request message accepted.
    pub max_message_bytes: usize,
    /// `server.tls`: the listener speaks TLS with the HTTP listener's certificate, and a
    /// client certificate of the deployment's CA proves a caller to be its modules (as over
    /// REST).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A malformed field of a message, refused before the contract as REST refuses a malformed
/// body: `INVALID_ARGUMENT` with code `cleave.bad_request`.
fn malformed(field: &str, e: &cleave_domain::InvalidValue) -> Status {
    status(cleave_kernel::error::KernelError::BadRequest {
        detail: format!("{field}: {}", e.0),
    })
}

/// The call context of a Boutique request (see [`Edge::context`]).
async fn context_of<T>(edge: &Edge, req: &Request<T>) -> Result<CallContext, Status> {
    let peer = edge.peer_modules(req.extensions());
    edge.context(req.metadata(), peer).await
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
struct Catalog(Arc<dyn CatalogApi>, Edge);

#[tonic::async_trait]
impl ProductCatalogService for Catalog {
    async fn list_products(
        &self,
        req: Request<hipstershop::Empty>,
    ) -> Result<Response<hipstershop::ListProductsResponse>, Status> {
        let products = self
            .0
            .list_products(&context_of(&self.1, &req).await?)
            .await;
        let products = products.map_err(status)?;
        Ok(Response::new(hipstershop::ListProductsResponse {
            products: products.into_iter().map(product_out).collect(),
        }))
    }

    async fn get_product(
        &self,
        req: Request<hipstershop::GetProductRequest>,
    ) -> Result<Response<hipstershop::Product>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let id = ProductId::parse(req.into_inner().id).map_err(|e| {
            status(catalog_api::CatalogError::InvalidProductId {
                detail: e.to_string(),
            })
        })?;
        let product = self.0.get_product(&ctx, id).await.map_err(status)?;
        Ok(Response::new(product_out(product)))
    }

    async fn search_products(
        &self,
        req: Request<hipstershop::SearchProductsRequest>,
    ) -> Result<Response<hipstershop::SearchProductsResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let query = req.into_inner().query;
        let found = self.0.search_products(&ctx, query).await;
        let found = found.map_err(status)?;
        Ok(Response::new(hipstershop::SearchProductsResponse {
            results: found.into_iter().map(product_out).collect(),
        }))
    }
}

/// `CurrencyService` over the currency contract.
struct Currency(Arc<dyn CurrencyApi>, Edge);

#[tonic::async_trait]
impl CurrencyService for Currency {
    async fn get_supported_currencies(
        &self,
        req: Request<hipstershop::Empty>,
    ) -> Result<Response<hipstershop::GetSupportedCurrenciesResponse>, Status> {
        let codes = self
            .0
            .supported_currencies(&context_of(&self.1, &req).await?)
            .await;
        let codes = codes.map_err(status)?;
        Ok(Response::new(hipstershop::GetSupportedCurrenciesResponse {
            currency_codes: codes.into_iter().map(String::from).collect(),
        }))
    }

    async fn convert(
        &self,
        req: Request<hipstershop::CurrencyConversionRequest>,
    ) -> Result<Response<hipstershop::Money>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::CurrencyConversionRequest { from, to_code } = req.into_inner();
        let invalid = |detail: String| status(currency_api::CurrencyError::InvalidMoney { detail });
        let from = from.ok_or_else(|| invalid("`from` is missing".into()))?;
        let from =
            Money::new(&from.currency_code, from.units, from.nanos).map_err(|e| invalid(e.0))?;
        let converted = self.0.convert(&ctx, from, to_code).await;
        Ok(Response::new(money_out(converted.map_err(status)?)))
    }
}

/// A field of a request that is not a valid value, as the contract's own error.
fn invalid<E: ApiError>(
    make: impl FnOnce(String) -> E,
) -> impl FnOnce(cleave_domain::InvalidValue) -> Status {
    move |e| status(make(e.0))
}

fn address_in(address: Option<hipstershop::Address>) -> Address {
    let a = address.unwrap_or_default();
    Address {
        street_address: a.street_address,
        city: a.city,
        state: a.state,
        country: a.country,
        zip_code: a.zip_code.to_string(),
    }
}

fn address_out(a: Address) -> hipstershop::Address {
    hipstershop::Address {
        street_address: a.street_address,
        city: a.city,
        state: a.state,
        country: a.country,
        // Boutique's zip code is a number; a zip code that is not one has no form there.
        zip_code: a.zip_code.parse().unwrap_or_default(),
    }
}

fn card_in(card: Option<hipstershop::CreditCardInfo>) -> CreditCard {
    let c = card.unwrap_or_default();
    CreditCard {
        number: c.credit_card_number,
        cvv: c.credit_card_cvv.to_string(),
        expiration_year: c.credit_card_expiration_year,
        expiration_month: u32::try_from(c.credit_card_expiration_month).unwrap_or(0),
    }
}

/// A money field Boutique's messages may leave out; a missing one is an empty amount, which
/// the contract refuses.
fn money_in(m: Option<hipstershop::Money>) -> Money {
    let m = m.unwrap_or_default();
    Money {
        currency_code: m.currency_code,
        units: m.units,
        nanos: m.nanos,
    }
}

/// The address and items of a shipping request. As over REST, where a malformed product id
/// in the body is refused before the contract, a malformed one is `INVALID_ARGUMENT`.
fn parcel(
    address: Option<hipstershop::Address>,
    items: Vec<hipstershop::CartItem>,
) -> Result<(Address, Vec<ShippingItem>), Status> {
    let address = address_in(address);
    let items = items
        .into_iter()
        .map(|i| {
            Ok(ShippingItem {
                product_id: ProductId::parse(i.product_id)
                    .map_err(|e| malformed("items.product_id", &e))?,
                quantity: i64::from(i.quantity),
            })
        })
        .collect::<Result<_, Status>>()?;
    Ok((address, items))
}

/// `RecommendationService` over the recommendation contract.
struct Recommendation(Arc<dyn RecommendationApi>, Edge);

#[tonic::async_trait]
impl hipstershop::recommendation_service_server::RecommendationService for Recommendation {
    async fn list_recommendations(
        &self,
        req: Request<hipstershop::ListRecommendationsRequest>,
    ) -> Result<Response<hipstershop::ListRecommendationsResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::ListRecommendationsRequest {
            user_id,
            product_ids,
        } = req.into_inner();
        let user = UserId::parse(user_id).map_err(invalid(|detail| {
            RecommendationError::InvalidUserId { detail }
        }))?;
        let products = product_ids
            .into_iter()
            .map(ProductId::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid(|detail| RecommendationError::InvalidProductId {
                detail,
            }))?;
        let found = self.0.list_recommendations(&ctx, user, products).await;
        Ok(Response::new(hipstershop::ListRecommendationsResponse {
            product_ids: found
                .map_err(status)?
                .into_iter()
                .map(|p| p.to_string())
                .collect(),
        }))
    }
}

/// `AdService` over the ads contract.
struct Ads(Arc<dyn AdsApi>, Edge);

#[tonic::async_trait]
impl hipstershop::ad_service_server::AdService for Ads {
    async fn get_ads(
        &self,
        req: Request<hipstershop::AdRequest>,
    ) -> Result<Response<hipstershop::AdResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let context_keys = req.into_inner().context_keys;
        let ads = self.0.get_ads(&ctx, AdsRequest { context_keys }).await;
        Ok(Response::new(hipstershop::AdResponse {
            ads: ads
                .map_err(status)?
                .ads
                .into_iter()
                .map(|a| hipstershop::Ad {
                    redirect_url: a.redirect_url,
                    text: a.text,
                })
                .collect(),
        }))
    }
}

/// `ShippingService` over the shipping contract.
struct Shipping(Arc<dyn ShippingApi>, Edge);

#[tonic::async_trait]
impl hipstershop::shipping_service_server::ShippingService for Shipping {
    async fn get_quote(
        &self,
        req: Request<hipstershop::GetQuoteRequest>,
    ) -> Result<Response<hipstershop::GetQuoteResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::GetQuoteRequest { address, items } = req.into_inner();
        let (address, items) = parcel(address, items)?;
        let quote = self
            .0
            .get_quote(&ctx, QuoteRequest { address, items })
            .await;
        Ok(Response::new(hipstershop::GetQuoteResponse {
            cost_usd: Some(money_out(quote.map_err(status)?.cost)),
        }))
    }

    async fn ship_order(
        &self,
        req: Request<hipstershop::ShipOrderRequest>,
    ) -> Result<Response<hipstershop::ShipOrderResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::ShipOrderRequest { address, items } = req.into_inner();
        let (address, items) = parcel(address, items)?;
        let shipment = self
            .0
            .ship_order(&ctx, ShipOrderRequest { address, items })
            .await;
        Ok(Response::new(hipstershop::ShipOrderResponse {
            tracking_id: shipment.map_err(status)?.tracking_id,
        }))
    }
}

/// `CartService` over the cart contract: a cart is its owner's (or an admin's), as over REST.
struct Cart(Arc<dyn CartApi>, Edge);

fn user_in(raw: String) -> Result<UserId, Status> {
    UserId::parse(raw).map_err(invalid(|detail| CartError::InvalidUserId { detail }))
}

#[tonic::async_trait]
impl hipstershop::cart_service_server::CartService for Cart {
    async fn add_item(
        &self,
        req: Request<hipstershop::AddItemRequest>,
    ) -> Result<Response<hipstershop::Empty>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::AddItemRequest { user_id, item } = req.into_inner();
        let item = item.unwrap_or_default();
        // As over REST, where a malformed id in the body is refused before the contract.
        let product =
            ProductId::parse(item.product_id).map_err(|e| malformed("item.product_id", &e))?;
        self.0
            .add_item(&ctx, user_in(user_id)?, product, i64::from(item.quantity))
            .await
            .map_err(status)?;
        Ok(Response::new(hipstershop::Empty {}))
    }

    async fn get_cart(
        &self,
        req: Request<hipstershop::GetCartRequest>,
    ) -> Result<Response<hipstershop::Cart>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let user = user_in(req.into_inner().user_id)?;
        let cart = self.0.get_cart(&ctx, user).await.map_err(status)?;
        Ok(Response::new(hipstershop::Cart {
            user_id: cart.user_id.to_string(),
            items: cart
                .items
                .into_iter()
                .map(|i| hipstershop::CartItem {
                    product_id: i.product_id.to_string(),
                    quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                })
                .collect(),
        }))
    }

    async fn empty_cart(
        &self,
        req: Request<hipstershop::EmptyCartRequest>,
    ) -> Result<Response<hipstershop::Empty>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let user = user_in(req.into_inner().user_id)?;
        self.0.empty_cart(&ctx, user).await.map_err(status)?;
        Ok(Response::new(hipstershop::Empty {}))
    }
}

/// `PaymentService` over the payment contract (charging is checkout's and admins').
struct Payment(Arc<dyn PaymentApi>, Edge);

#[tonic::async_trait]
impl hipstershop::payment_service_server::PaymentService for Payment {
    async fn charge(
        &self,
        req: Request<hipstershop::ChargeRequest>,
    ) -> Result<Response<hipstershop::ChargeResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::ChargeRequest {
            amount,
            credit_card,
        } = req.into_inner();
        let charge = ChargeRequest {
            amount: money_in(amount),
            card: card_in(credit_card),
            reference: None,
        };
        let charged = self.0.charge(&ctx, charge).await.map_err(status)?;
        Ok(Response::new(hipstershop::ChargeResponse {
            transaction_id: charged.transaction_id,
        }))
    }
}

/// `EmailService` over the email contract (sending is checkout's and admins'): Boutique's
/// `OrderResult` becomes the confirmation's summary. Boutique's items carry a unit price and a
/// product id only: a line costs its unit price times its quantity, is named by its product
/// id, and the total is the lines and shipping. Sending again for an order sends nothing (the
/// message id is `boutique-<order id>`).
struct Email(Arc<dyn EmailApi>, Edge);

#[tonic::async_trait]
impl hipstershop::email_service_server::EmailService for Email {
    async fn send_order_confirmation(
        &self,
        req: Request<hipstershop::SendOrderConfirmationRequest>,
    ) -> Result<Response<hipstershop::Empty>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let hipstershop::SendOrderConfirmationRequest { email, order } = req.into_inner();
        let order = order.unwrap_or_default();
        let bad = |detail: String| status(email_api::EmailError::InvalidRequest { detail });
        let shipping_cost = money_in(order.shipping_cost);
        let mut total = shipping_cost.clone();
        let mut lines = Vec::with_capacity(order.items.len());
        for item in order.items {
            let (product, quantity) = item
                .item
                .map(|i| (i.product_id, i64::from(i.quantity)))
                .unwrap_or_default();
            let cost = money_in(item.cost)
                .checked_mul(quantity)
                .map_err(|e| bad(format!("item {product}: {e}")))?;
            total = total
                .checked_add(&cost)
                .map_err(|e| bad(format!("item {product}: {e}")))?;
            lines.push(email_api::SummaryLine {
                name: product,
                quantity,
                cost,
            });
        }
        let request = email_api::ConfirmationRequest {
            message_id: format!("boutique-{}", order.order_id),
            email,
            order: email_api::OrderSummary {
                order_id: order.order_id,
                tracking_id: order.shipping_tracking_id,
                shipping_cost,
                total,
                lines,
                address: address_in(order.shipping_address),
            },
        };
        self.0
            .send_order_confirmation(&ctx, request)
            .await
            .map_err(status)?;
        Ok(Response::new(hipstershop::Empty {}))
    }
}

/// `CheckoutService` over the checkout contract: an order is placed for its user (with their
/// token) or by a trusted caller; an `idempotency-key` metadata entry makes a retry safe.
struct Checkout(Arc<dyn CheckoutApi>, Edge);

#[tonic::async_trait]
impl hipstershop::checkout_service_server::CheckoutService for Checkout {
    async fn place_order(
        &self,
        req: Request<hipstershop::PlaceOrderRequest>,
    ) -> Result<Response<hipstershop::PlaceOrderResponse>, Status> {
        let ctx = context_of(&self.1, &req).await?;
        let key = match req.metadata().get("idempotency-key") {
            Some(raw) => Some(
                raw.to_str()
                    .ok()
                    .and_then(|k| IdempotencyKey::parse(k).ok())
                    .ok_or_else(|| {
                        status(cleave_kernel::error::KernelError::BadRequest {
                            detail: "idempotency-key is not a valid key".into(),
                        })
                    })?,
            ),
            None => None,
        };
        let r = req.into_inner();
        let bad = |field: &str, e: cleave_domain::InvalidValue| malformed(field, &e);
        let order = PlaceOrderRequest {
            user_id: UserId::parse(r.user_id).map_err(|e| bad("user_id", e))?,
            user_currency: CurrencyCode::parse(r.user_currency)
                .map_err(|e| bad("user_currency", e))?,
            address: address_in(r.address),
            email: r.email,
            credit_card: card_in(r.credit_card),
        };
        let placed = self.0.place_order(&ctx, order, key).await;
        let placed = placed.map_err(status)?;
        Ok(Response::new(hipstershop::PlaceOrderResponse {
            order: Some(hipstershop::OrderResult {
                order_id: placed.order_id,
                shipping_tracking_id: placed.shipping_tracking_id,
                shipping_cost: Some(money_out(placed.shipping_cost)),
                shipping_address: Some(address_out(placed.shipping_address)),
                items: placed
                    .items
                    .into_iter()
                    .map(|i| hipstershop::OrderItem {
                        item: Some(hipstershop::CartItem {
                            product_id: i.product_id.to_string(),
                            quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                        }),
                        // Boutique's item cost is the unit price in the shopper's currency.
                        cost: Some(money_out(i.unit_price)),
                    })
                    .collect(),
            }),
        }))
    }
}

/// Reaches remote module `module` as Online Boutique's service for it, through `remote` (its
/// pipeline), for `modules.<m>.protocol = "boutique"` (the modules of
/// [`crate::config::BOUTIQUE_CLIENTS`]).
pub fn connect_boutique(module: &str, remote: RemoteClient, asm: &mut Assembly) {
    if module == RecommendationContract::MODULE {
        asm.connect_with::<RecommendationContract>(Arc::new(BoutiqueRecommendation(remote)));
    }
}

/// The recommendation module as Boutique's `RecommendationService`: `ListRecommendations`
/// with Boutique's messages.
struct BoutiqueRecommendation(RemoteClient);

#[tonic::async_trait]
impl RecommendationApi for BoutiqueRecommendation {
    async fn list_recommendations(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_ids: Vec<ProductId>,
    ) -> Result<Vec<ProductId>, RecommendationError> {
        use prost::Message as _;
        let request = hipstershop::ListRecommendationsRequest {
            user_id: user_id.to_string(),
            product_ids: product_ids.iter().map(ToString::to_string).collect(),
        };
        let answer = self
            .0
            .op(&recommendation_api::ops::LIST_RECOMMENDATIONS, ctx)
            .message(
                "/hipstershop.RecommendationService/ListRecommendations",
                request.encode_to_vec().into(),
            )
            .fetch_message::<RecommendationError>()
            .await?;
        let answer = hipstershop::ListRecommendationsResponse::decode(answer).map_err(|e| {
            RecommendationError::unavailable(format!("the answer does not decode: {e}"))
        })?;
        answer
            .product_ids
            .into_iter()
            .map(|id| {
                ProductId::parse(id).map_err(|e| {
                    RecommendationError::unavailable(format!(
                        "it recommended a bad product id: {e}"
                    ))
                })
            })
            .collect()
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
/// `listener` (from [`bind`]) until `stop` completes, as `options` say; the server's task and
/// its health statuses.
///
/// # Errors
/// When the listener cannot be used or the reflection service cannot be built.
pub async fn serve(
    listener: std::net::TcpListener,
    options: Options,
    assembly: &Assembly,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, Health)> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let mut routes = tonic::service::Routes::builder();
    let mut served = vec!["grpc.health.v1.Health"];
    let edge = Arc::new(Edge {
        authenticator: assembly.authenticator(),
        trusted_as: options.trusted.then(|| Arc::from(crate::modules::names())),
        modules: Arc::from(crate::modules::names()),
        handler_timeout: options.handler_timeout,
    });
    // Each hosted module's contract as Cleave's own service (what other Cleave processes
    // call), as the edge reaches it.
    for entry in crate::modules::MODULES {
        if let Some(name) =
            entry.serve_grpc(&mut routes, assembly, &edge, options.max_message_bytes)
        {
            served.push(name);
            health
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
    }
    // Each placed module's Boutique service, as the edge reaches it (its access rules apply
    // here): a hosted module's served by it, a remote one's through its client (over REST or
    // gRPC), so that Boutique's clients may be pointed at any one process of a deployment.
    macro_rules! serve_module {
        ($contract:ty, $module:ident :: $server:ident, $adapter:ident) => {
            if let Some(api) = assembly.api::<$contract>(EDGE) {
                let server = hipstershop::$module::$server::new($adapter(api, (*edge).clone()));
                served.push(
                    <hipstershop::$module::$server<$adapter> as tonic::server::NamedService>::NAME,
                );
                routes.add_service(server);
                health
                    .set_serving::<hipstershop::$module::$server<$adapter>>()
                    .await;
            }
        };
    }
    serve_module!(
        CatalogContract,
        product_catalog_service_server::ProductCatalogServiceServer,
        Catalog
    );
    serve_module!(
        CurrencyContract,
        currency_service_server::CurrencyServiceServer,
        Currency
    );
    serve_module!(
        RecommendationContract,
        recommendation_service_server::RecommendationServiceServer,
        Recommendation
    );
    serve_module!(AdsContract, ad_service_server::AdServiceServer, Ads);
    serve_module!(
        ShippingContract,
        shipping_service_server::ShippingServiceServer,
        Shipping
    );
    serve_module!(CartContract, cart_service_server::CartServiceServer, Cart);
    serve_module!(
        PaymentContract,
        payment_service_server::PaymentServiceServer,
        Payment
    );
    serve_module!(
        CheckoutContract,
        checkout_service_server::CheckoutServiceServer,
        Checkout
    );
    serve_module!(
        EmailContract,
        email_service_server::EmailServiceServer,
        Email
    );
    // Reflection lists what its descriptors describe (the proto describes all nine Boutique
    // services; Cleave's own have no proto, their schema being the contract traits), in both
    // versions: grpcurl asks v1 first, older clients only v1alpha.
    let reflection = || {
        served
            .iter()
            .filter(|name| !name.starts_with("cleave."))
            .fold(
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
    // Each call's context ends at the handler timeout (or its sooner `grpc-timeout`) and its
    // calls answer DEADLINE_EXCEEDED with Cleave's code then. tonic's own timeout is only the
    // backstop for a handler that ignores its deadline, a second later: at the same instant
    // it would race the handler's answer with its bare CANCELLED.
    let server = tonic::transport::Server::builder()
        .timeout(options.handler_timeout + Duration::from_secs(1))
        .add_routes(routes.routes());
    let task = match options.tls {
        None => {
            let incoming = cleave_kernel::grpc::incoming(listener);
            tokio::spawn(async move {
                if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(error = %e, "the gRPC server failed");
                }
            })
        }
        Some(tls) => {
            let incoming = tls_incoming(listener, &tls);
            tokio::spawn(async move {
                if let Err(e) = server.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(error = %e, "the gRPC server failed");
                }
            })
        }
    };
    tracing::info!(addr = %bound, "serving gRPC");
    Ok((task, Health { health, served }))
}

/// The TLS connections of `listener`: each handshake on a task of its own (a slow client holds
/// up no other), with the HTTP listener's configuration offering HTTP/2 (gRPC's) by ALPN.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    config: &rustls::ServerConfig,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "gRPC listener: TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "gRPC listener: TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The gRPC health statuses of a running server's services.
#[derive(Clone)]
pub struct Health {
    health: tonic_health::server::HealthReporter,
    served: Vec<&'static str>,
}

impl Health {
    /// Says `NOT_SERVING` for every service (and the server as a whole) in gRPC health: the
    /// process is draining, as its failing `/health/ready` says over HTTP.
    pub async fn draining(&self) {
        use tonic_health::ServingStatus::NotServing;
        self.health.set_service_status("", NotServing).await;
        for name in &self.served {
            self.health.set_service_status(*name, NotServing).await;
        }
    }
}
