//! The cart module's REST API, served from any [`CartApi`].

use actix_web::{HttpResponse, web};
use cleave_domain::UserId;
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};

use crate::{AddItemRequest, Cart, CartApi, CartError, CartItem, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_cart, empty_cart, add_item),
    components(schemas(Cart, CartItem, AddItemRequest)),
    tags((name = "cart", description = "Carts per user or session"))
)]
pub struct ApiDoc;

/// The routes of the cart's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::GET_CART, get_cart)
        .add(&ops::EMPTY_CART, empty_cart)
        .add(&ops::ADD_ITEM, add_item);
}

fn user(raw: String) -> Result<UserId, CartError> {
    UserId::parse(raw).map_err(|e| CartError::InvalidUserId {
        detail: e.to_string(),
    })
}

/// The user's cart (empty for a user who has none).
#[utoipa::path(
    get,
    path = ops::GET_CART.path,
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
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
    path = ops::EMPTY_CART.path,
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    responses(
        (status = 204, description = "Emptied (also when it was empty)"),
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
    path = ops::ADD_ITEM.path,
    tag = "cart",
    params(("user_id" = String, Path, description = "Session or user id")),
    request_body = AddItemRequest,
    responses(
        (status = 200, description = "The cart after the addition", body = Cart),
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
