//! The checkout module's REST API, served from any [`CheckoutApi`].

use actix_web::{HttpRequest, web};
use cleave_domain::UserId;
use cleave_kernel::http::{Call, Reply, Routes, created, ok};
use serde::Deserialize;

use crate::{
    CheckoutApi, CheckoutError, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, PlaceOrderRequest, ops,
};

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
async fn place_order(
    c: Call<dyn CheckoutApi>,
    req: HttpRequest,
    body: web::Json<PlaceOrderRequest>,
) -> Reply {
    let key = idempotency_key(&req)?;
    let order = c.api.place_order(&c.ctx, body.into_inner(), key).await?;
    created(ops::GET_ORDER.path_with(&[&order.order_id]), order)
}

/// One placed order (its owner or an admin).
async fn get_order(c: Call<dyn CheckoutApi>, order_id: web::Path<String>) -> Reply {
    ok(c.api.get_order(&c.ctx, order_id.into_inner()).await?)
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: Option<String>,
    limit: Option<u64>,
}

/// Placed orders, newest first: a user's (that user or an admin), or every order (admins).
async fn list_orders(c: Call<dyn CheckoutApi>, query: web::Query<ListQuery>) -> Reply {
    let ListQuery { user_id, limit } = query.into_inner();
    let orders = match user_id {
        Some(raw) => {
            let user_id = UserId::parse(raw).map_err(|e| invalid(e.0))?;
            c.api.list_orders(&c.ctx, user_id).await?
        }
        None => {
            c.api
                .list_all_orders(&c.ctx, limit.unwrap_or(100).min(1000))
                .await?
        }
    };
    ok(orders)
}
