//! The checkout module's REST API, served from any [`CheckoutApi`].

use actix_web::{HttpRequest, HttpResponse, web};
use cleave_domain::UserId;
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{
    CheckoutApi, CheckoutError, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, Order, OrderItem,
    OrderStatus, PlaceOrderRequest, ops,
};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(place_order, get_order, list_orders),
    components(schemas(PlaceOrderRequest, Order, OrderItem, OrderStatus)),
    tags((name = "checkout", description = "Placing orders and reading them back"))
)]
pub struct ApiDoc;

/// The routes of the checkout module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::PLACE_ORDER, place_order)
        .add(&ops::LIST_ORDERS, list_orders)
        .add(&ops::GET_ORDER, get_order);
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
    path = ops::PLACE_ORDER.path,
    tag = "checkout",
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "Makes the request safe to retry: 1 to 255 visible ASCII characters; a repeat returns the first result and charges at most once"
    )),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, description = "The order was placed", body = Order,
            headers(("Location" = String, description = "URL of the order"))),
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
            ops::GET_ORDER.path_with(&[&order.order_id]),
        ))
        .json(order))
}

/// One placed order (its owner or an admin).
#[utoipa::path(
    get,
    path = ops::GET_ORDER.path,
    tag = "checkout",
    params(("order_id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = Order),
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
    path = ops::LIST_ORDERS.path,
    tag = "checkout",
    params(
        ("user_id" = Option<String>, Query, description = "Whose orders; without it, every order (admins only)"),
        ("limit" = Option<u64>, Query, description = "Most orders when listing every order (default 100, at most 1000)"),
    ),
    responses(
        (status = 200, description = "The orders (empty when none)", body = [Order]),
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
