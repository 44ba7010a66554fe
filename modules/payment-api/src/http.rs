//! The payment module's REST API, served from any [`PaymentApi`].

use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::client::encode;
use cleave_kernel::{CallContext, Failure, Problem};

use crate::{CardBrand, Charge, ChargeRequest, ChargeStatus, PaymentApi};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(charge, find_charge, get_charge, refund),
    components(schemas(ChargeRequest, Charge, CardBrand, ChargeStatus)),
    tags((name = "payment", description = "Card charges and refunds"))
)]
pub struct ApiDoc;

/// Registers `/api/payment/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn PaymentApi>) {
    cfg.service(
        web::scope("/api/payment/v1")
            .app_data(web::Data::from(api))
            .service(
                web::resource("/charges")
                    .route(web::post().to(charge))
                    .route(web::get().to(find_charge)),
            )
            .service(web::resource("/charges/{transaction_id}").route(web::get().to(get_charge)))
            .service(
                web::resource("/charges/{transaction_id}/refund").route(web::post().to(refund)),
            ),
    );
}

/// Charges an amount to a card (a repeated reference returns the first charge).
#[utoipa::path(
    post,
    path = "/api/payment/v1/charges",
    tag = "payment",
    request_body = ChargeRequest,
    responses(
        (status = 201, description = "The card was charged", body = Charge,
            headers(("Location" = String, description = "URL of the charge"))),
        (status = 400, description = "Malformed request, card, amount or reference (`payment.invalid_card`, `payment.invalid_cvv`, `payment.invalid_amount`, `payment.invalid_reference`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Card declined (`payment.unsupported_card`, `payment.card_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payment storage unavailable (`payment.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn charge(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    body: web::Json<ChargeRequest>,
) -> Result<HttpResponse, Failure> {
    let charge = api.charge(&ctx, body.into_inner()).await?;
    let location = format!("/api/payment/v1/charges/{}", encode(&charge.transaction_id));
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location))
        .json(charge))
}

/// The charge with this transaction id.
#[utoipa::path(
    get,
    path = "/api/payment/v1/charges/{transaction_id}",
    tag = "payment",
    params(("transaction_id" = String, Path, description = "The charge's transaction id")),
    responses(
        (status = 200, description = "The charge", body = Charge),
        (status = 404, description = "No such charge (`payment.transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payment storage unavailable (`payment.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_charge(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    transaction_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_charge(&ctx, transaction_id.into_inner()).await?))
}

#[derive(serde::Deserialize)]
struct FindQuery {
    reference: String,
}

/// The charge made with a reference.
#[utoipa::path(
    get,
    path = "/api/payment/v1/charges",
    tag = "payment",
    params(("reference" = String, Query, description = "The caller's reference the charge was made with")),
    responses(
        (status = 200, description = "The charge", body = Charge),
        (status = 400, description = "Malformed or missing reference (`payment.invalid_reference`, `cleave.invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No charge has this reference (`payment.transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payment storage unavailable (`payment.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn find_charge(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    query: web::Query<FindQuery>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.find_charge(&ctx, query.into_inner().reference).await?))
}

/// Refunds a charge in full (refunding a refunded charge changes nothing). Takes no body.
/// Admins only, or a module of the deployment (client certificate).
#[utoipa::path(
    post,
    path = "/api/payment/v1/charges/{transaction_id}/refund",
    tag = "payment",
    params(("transaction_id" = String, Path, description = "The charge's transaction id")),
    responses(
        (status = 200, description = "The refunded charge", body = Charge),
        (status = 401, description = "Neither an admin nor a module of the deployment (`auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Signed in without the admin role (`auth.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such charge (`payment.transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payment storage unavailable (`payment.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn refund(
    req: actix_web::HttpRequest,
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    transaction_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    // Refunds move money back: admins, or checkout proving it is a module of the deployment.
    cleave_kernel::http::require_admin_or_module(&req, &ctx)?;
    Ok(HttpResponse::Ok().json(api.refund(&ctx, transaction_id.into_inner()).await?))
}
