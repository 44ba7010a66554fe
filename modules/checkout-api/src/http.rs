//! The checkout module's REST API, served from any [`CheckoutApi`].

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use cleave_kernel::types::UserId;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{
    CheckoutApi, CheckoutError, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, PlaceOrderRequest,
};

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

async fn get_order(
    ctx: CallContext,
    api: web::Data<dyn CheckoutApi>,
    order_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_order(&ctx, order_id.into_inner()).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: String,
}

async fn list_orders(
    ctx: CallContext,
    api: web::Data<dyn CheckoutApi>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    let user_id = UserId::parse(query.into_inner().user_id).map_err(|e| invalid(e.0))?;
    Ok(HttpResponse::Ok().json(api.list_orders(&ctx, user_id).await?))
}
