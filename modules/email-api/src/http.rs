//! The email module's REST API, served from any [`EmailApi`].

use actix_web::{HttpResponse, web};
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{Confirmation, ConfirmationRequest, EmailApi, OrderSummary, SummaryLine, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(send_order_confirmation, list_confirmations),
    components(schemas(ConfirmationRequest, OrderSummary, SummaryLine, Confirmation)),
    tags((name = "email", description = "Order confirmations sent by e-mail"))
)]
pub struct ApiDoc;

/// The routes of the email module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::SEND_ORDER_CONFIRMATION, send_order_confirmation)
        .add(&ops::LIST_CONFIRMATIONS, list_confirmations);
}

/// Sends the confirmation of an order, once per `message_id` (a repeat returns the first).
#[utoipa::path(
    post,
    path = ops::SEND_ORDER_CONFIRMATION.path,
    tag = "email",
    request_body = ConfirmationRequest,
    responses(
        (status = 201, description = "The confirmation as sent (or as first sent, for a repeated `message_id`)", body = Confirmation),
    )
)]
async fn send_order_confirmation(
    ctx: CallContext,
    api: web::Data<dyn EmailApi>,
    body: web::Json<ConfirmationRequest>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Created().json(api.send_order_confirmation(&ctx, body.into_inner()).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: String,
}

/// The confirmations sent for an order, oldest first.
#[utoipa::path(
    get,
    path = ops::LIST_CONFIRMATIONS.path,
    tag = "email",
    params(("order_id" = String, Query, description = "The order whose confirmations to list")),
    responses(
        (status = 200, description = "The confirmations (empty when none)", body = [Confirmation]),
    )
)]
async fn list_confirmations(
    ctx: CallContext,
    api: web::Data<dyn EmailApi>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(
        api.list_confirmations(&ctx, query.into_inner().order_id)
            .await?,
    ))
}
