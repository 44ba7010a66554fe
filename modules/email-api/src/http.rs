//! The email module's REST API, served from any [`EmailApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure, Problem};
use serde::Deserialize;

use crate::{Confirmation, ConfirmationRequest, EmailApi, OrderSummary, SummaryLine};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(send_order_confirmation, list_confirmations),
    components(schemas(ConfirmationRequest, OrderSummary, SummaryLine, Confirmation)),
    tags((name = "email", description = "Order confirmations sent by e-mail"))
)]
pub struct ApiDoc;

/// Registers `/api/email/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn EmailApi>) {
    cfg.service(
        web::scope("/api/email/v1")
            .app_data(web::Data::from(api))
            .service(
                web::resource("/confirmations")
                    .route(web::post().to(send_order_confirmation))
                    .route(web::get().to(list_confirmations)),
            ),
    );
}

/// Sends the confirmation of an order, once per `message_id` (a repeat returns the first).
#[utoipa::path(
    post,
    path = "/api/email/v1/confirmations",
    tag = "email",
    request_body = ConfirmationRequest,
    responses(
        (status = 201, description = "The confirmation as sent (or as first sent, for a repeated `message_id`)", body = Confirmation),
        (status = 400, description = "Malformed request (`email.invalid_request`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Email storage or mail transport unavailable (`email.unavailable`)", body = Problem, content_type = "application/problem+json"),
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
    path = "/api/email/v1/confirmations",
    tag = "email",
    params(("order_id" = String, Query, description = "The order whose confirmations to list")),
    responses(
        (status = 200, description = "The confirmations (empty when none)", body = [Confirmation]),
        (status = 400, description = "Missing or malformed query string (`cleave.invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Email storage unavailable (`email.unavailable`)", body = Problem, content_type = "application/problem+json"),
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
