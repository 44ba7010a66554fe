//! The payment module's REST API, served from any [`PaymentApi`].

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};

use crate::{CardBrand, Charge, ChargeRequest, ChargeStatus, PaymentApi, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(charge, find_charge, get_charge, refund),
    components(schemas(ChargeRequest, Charge, CardBrand, ChargeStatus)),
    tags((name = "payment", description = "Card charges and refunds"))
)]
pub struct ApiDoc;

/// The routes of the payment module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::CHARGE, charge)
        .add(&ops::FIND_CHARGE, find_charge)
        .add(&ops::GET_CHARGE, get_charge)
        .add(&ops::REFUND, refund);
}

/// Charges an amount to a card (a repeated reference returns the first charge).
#[utoipa::path(
    post,
    path = ops::CHARGE.path,
    tag = "payment",
    request_body = ChargeRequest,
    responses(
        (status = 201, description = "The card was charged", body = Charge,
            headers(("Location" = String, description = "URL of the charge"))),
    )
)]
async fn charge(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    body: web::Json<ChargeRequest>,
) -> Result<HttpResponse, Failure> {
    let charge = api.charge(&ctx, body.into_inner()).await?;
    let location = ops::GET_CHARGE.path_with(&[&charge.transaction_id]);
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location))
        .json(charge))
}

/// The charge with this transaction id.
#[utoipa::path(
    get,
    path = ops::GET_CHARGE.path,
    tag = "payment",
    params(("transaction_id" = String, Path, description = "The charge's transaction id")),
    responses(
        (status = 200, description = "The charge", body = Charge),
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
    path = ops::FIND_CHARGE.path,
    tag = "payment",
    params(("reference" = String, Query, description = "The caller's reference the charge was made with")),
    responses(
        (status = 200, description = "The charge", body = Charge),
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
    path = ops::REFUND.path,
    tag = "payment",
    params(("transaction_id" = String, Path, description = "The charge's transaction id")),
    responses(
        (status = 200, description = "The refunded charge", body = Charge),
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
