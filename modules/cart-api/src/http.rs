//! The cart module's REST API, served from any [`CartApi`].

use actix_web::web;
use cleave_domain::UserId;
use cleave_kernel::http::{Call, Reply, Routes, no_content, ok};

use crate::{AddItemRequest, CartApi, CartError, ops};

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
async fn get_cart(c: Call<dyn CartApi>, user_id: web::Path<String>) -> Reply {
    let user_id = user(user_id.into_inner())?;
    ok(c.api.get_cart(&c.ctx, user_id).await?)
}

/// Removes every line of the cart.
async fn empty_cart(c: Call<dyn CartApi>, user_id: web::Path<String>) -> Reply {
    let user_id = user(user_id.into_inner())?;
    c.api.empty_cart(&c.ctx, user_id).await?;
    no_content()
}

/// Adds a quantity of a product (to an existing line if there is one).
async fn add_item(
    c: Call<dyn CartApi>,
    user_id: web::Path<String>,
    body: web::Json<AddItemRequest>,
) -> Reply {
    let user_id = user(user_id.into_inner())?;
    let AddItemRequest {
        product_id,
        quantity,
    } = body.into_inner();
    ok(c.api
        .add_item(&c.ctx, user_id, product_id, quantity)
        .await?)
}
