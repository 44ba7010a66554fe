//! The checkout module's REST API, served from any [`CheckoutApi`].

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use cleave_kernel::types::UserId;
use cleave_kernel::{CallContext, Failure, Problem};
use serde::Deserialize;

use crate::{
    CheckoutApi, CheckoutError, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, Order, OrderItem,
    OrderStatus, PlaceOrderRequest,
};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(place_order, get_order, list_orders),
    components(schemas(PlaceOrderRequest, Order, OrderItem, OrderStatus)),
    tags((name = "checkout", description = "Placing orders and reading them back"))
)]
pub struct ApiDoc;

/// Registers `/api/checkout/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn CheckoutApi>) {
    cfg.service(
        web::scope("/api/checkout/v1")
            .app_data(web::Data::from(api))
            .service(
                web::resource("/orders")
                    .route(web::post().to(place_order))
                    .route(web::get().to(list_orders)),
            )
            .service(web::resource("/orders/{order_id}").route(web::get().to(get_order))),
    );
}

fn invalid(detail: String) -> CheckoutError {
    CheckoutError::InvalidRequest { detail }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, CheckoutError> {
    req.headers()
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| {
            let raw = v
                .to_str()
                .map_err(|_| invalid("the Idempotency-Key header is not visible ASCII".into()))?;
            IdempotencyKey::parse(raw).map_err(|e| invalid(e.0))
        })
        .transpose()
}

/// Buys the user's cart: charges the card, ships, records the order and empties the cart.
#[utoipa::path(
    post,
    path = "/api/checkout/v1/orders",
    tag = "checkout",
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "Makes the request safe to retry: 1 to 255 visible ASCII characters; a repeat returns the first result and charges at most once"
    )),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, description = "The order was placed", body = Order,
            headers(("Location" = String, description = "URL of the order"))),
        (status = 400, description = "Malformed request, address or idempotency key (`checkout.invalid_request`, `checkout.invalid_address`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment declined; nothing was charged (`checkout.payment_declined`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this idempotency key is in progress (`checkout.request_in_progress`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The order cannot be placed (`checkout.empty_cart`, `checkout.product_unavailable`, `checkout.unsupported_currency`, `checkout.idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A module checkout needs, or its storage, is unavailable; nothing is left charged (`checkout.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn place_order(
    ctx: CallContext,
    req: HttpRequest,
    api: web::Data<dyn CheckoutApi>,
    body: web::Json<PlaceOrderRequest>,
) -> Result<HttpResponse, Failure> {
    let key = idempotency_key(&req)?;
    let order = api.place_order(&ctx, body.into_inner(), key).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/checkout/v1/orders/{}", order.order_id),
        ))
        .json(order))
}

/// One placed order (its owner or an admin).
#[utoipa::path(
    get,
    path = "/api/checkout/v1/orders/{order_id}",
    tag = "checkout",
    params(("order_id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 401, description = "No access token (`checkout.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another user's (`checkout.order_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Checkout storage unavailable (`checkout.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_order(
    ctx: CallContext,
    api: web::Data<dyn CheckoutApi>,
    order_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_order(&ctx, order_id.into_inner()).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: Option<String>,
    limit: Option<u64>,
}

/// Placed orders, newest first: a user's (that user or an admin), or every order (admins).
#[utoipa::path(
    get,
    path = "/api/checkout/v1/orders",
    tag = "checkout",
    params(
        ("user_id" = Option<String>, Query, description = "Whose orders; without it, every order (admins only)"),
        ("limit" = Option<u64>, Query, description = "Most orders when listing every order (default 100, at most 1000)"),
    ),
    responses(
        (status = 200, description = "The orders (empty when none)", body = [Order]),
        (status = 400, description = "Malformed user id (`checkout.invalid_request`, `cleave.invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token (`checkout.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's orders, or every order without the admin role (`checkout.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Checkout storage unavailable (`checkout.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_orders(
    ctx: CallContext,
    api: web::Data<dyn CheckoutApi>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    let ListQuery { user_id, limit } = query.into_inner();
    let orders = match user_id {
        Some(raw) => {
            let user_id = UserId::parse(raw).map_err(|e| invalid(e.0))?;
            api.list_orders(&ctx, user_id).await?
        }
        None => {
            api.list_all_orders(&ctx, limit.unwrap_or(100).min(1000))
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(orders))
}
