//! The cart module's REST API, served from any [`CartApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::UserId;
use cleave_kernel::{CallContext, Failure, Problem};

use crate::{AddItemRequest, Cart, CartApi, CartError, CartItem};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_cart, empty_cart, add_item),
    components(schemas(Cart, CartItem, AddItemRequest)),
    tags((name = "cart", description = "Carts per user or session"))
)]
pub struct ApiDoc;

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

/// The user's cart (empty for a user who has none).
#[utoipa::path(
    get,
    path = "/api/cart/v1/carts/{user_id}",
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 400, description = "Malformed user id (`cart.invalid_user_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cart storage unavailable (`cart.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_cart(
    ctx: CallContext,
    api: web::Data<dyn CartApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let user_id = user(user_id.into_inner())?;
    Ok(HttpResponse::Ok().json(api.get_cart(&ctx, user_id).await?))
}

/// Removes every line of the cart.
#[utoipa::path(
    delete,
    path = "/api/cart/v1/carts/{user_id}",
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    responses(
        (status = 204, description = "Emptied (also when it was empty)"),
        (status = 400, description = "Malformed user id (`cart.invalid_user_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cart storage unavailable (`cart.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn empty_cart(
    ctx: CallContext,
    api: web::Data<dyn CartApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let user_id = user(user_id.into_inner())?;
    api.empty_cart(&ctx, user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a quantity of a product (to an existing line if there is one).
#[utoipa::path(
    post,
    path = "/api/cart/v1/carts/{user_id}/items",
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    request_body = AddItemRequest,
    responses(
        (status = 200, description = "The cart after the addition", body = Cart),
        (status = 400, description = "Malformed request or quantity (`cart.invalid_quantity`, `cart.invalid_user_id`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A limit would be exceeded (`cart.quantity_limit_exceeded`, `cart.too_many_items`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cart storage unavailable (`cart.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
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
