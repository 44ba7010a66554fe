//! The cart module's REST API, served from any [`CartApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::UserId;
use cleave_kernel::{CallContext, Failure};

use crate::{AddItemRequest, CartApi, CartError};

/// Registers `/api/cart/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn CartApi>) {
    cfg.service(
        web::scope("/api/cart/v1")
            .app_data(web::Data::from(api))
            .service(
                web::resource("/carts/{user_id}")
                    .route(web::get().to(get_cart))
                    .route(web::delete().to(empty_cart)),
            )
            .service(web::resource("/carts/{user_id}/items").route(web::post().to(add_item))),
    );
}

fn user(raw: String) -> Result<UserId, CartError> {
    UserId::parse(raw).map_err(|e| CartError::InvalidUserId {
        detail: e.to_string(),
    })
}

async fn get_cart(
    ctx: CallContext,
    api: web::Data<dyn CartApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let user_id = user(user_id.into_inner())?;
    Ok(HttpResponse::Ok().json(api.get_cart(&ctx, user_id).await?))
}

async fn empty_cart(
    ctx: CallContext,
    api: web::Data<dyn CartApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let user_id = user(user_id.into_inner())?;
    api.empty_cart(&ctx, user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add_item(
    ctx: CallContext,
    api: web::Data<dyn CartApi>,
    user_id: web::Path<String>,
    body: web::Json<AddItemRequest>,
) -> Result<HttpResponse, Failure> {
    let user_id = user(user_id.into_inner())?;
    let AddItemRequest {
        product_id,
        quantity,
    } = body.into_inner();
    Ok(HttpResponse::Ok().json(api.add_item(&ctx, user_id, product_id, quantity).await?))
}
