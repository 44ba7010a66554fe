//! The email module's REST API, served from any [`EmailApi`].

use actix_web::{HttpResponse, web};
use cleave_kernel::http::{Call, Reply, Routes, ok};
use serde::Deserialize;

use crate::{ConfirmationRequest, EmailApi, ops};

/// The routes of the email module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::SEND_ORDER_CONFIRMATION, send_order_confirmation)
        .add(&ops::LIST_CONFIRMATIONS, list_confirmations);
}

/// Sends the confirmation of an order, once per `message_id` (a repeat returns the first).
async fn send_order_confirmation(
    c: Call<dyn EmailApi>,
    body: web::Json<ConfirmationRequest>,
) -> Reply {
    let sent = c
        .api
        .send_order_confirmation(&c.ctx, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(sent))
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: String,
}

/// The confirmations sent for an order, oldest first.
async fn list_confirmations(c: Call<dyn EmailApi>, query: web::Query<ListQuery>) -> Reply {
    ok(c.api
        .list_confirmations(&c.ctx, query.into_inner().order_id)
        .await?)
}
