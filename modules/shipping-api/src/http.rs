//! The shipping module's REST API, served from any [`ShippingApi`].

use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::client::encode;
use cleave_kernel::{CallContext, Failure, Problem};

use crate::{Quote, QuoteRequest, ShipOrderRequest, Shipment, ShippingApi, ShippingItem};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_quote, ship_order, get_shipment),
    components(schemas(ShippingItem, QuoteRequest, Quote, ShipOrderRequest, Shipment)),
    tags((name = "shipping", description = "Shipping quotes and shipments"))
)]
pub struct ApiDoc;

/// Registers `/api/shipping/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn ShippingApi>) {
    cfg.service(
        web::scope("/api/shipping/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/quotes").route(web::post().to(get_quote)))
            .service(web::resource("/shipments").route(web::post().to(ship_order)))
            .service(web::resource("/shipments/{tracking_id}").route(web::get().to(get_shipment))),
    );
}

/// What shipping these items to this address would cost; nothing is stored.
#[utoipa::path(
    post,
    path = "/api/shipping/v1/quotes",
    tag = "shipping",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The quote, in USD", body = Quote),
        (status = 400, description = "Invalid address (`shipping.invalid_address`), quantity not between 1 and 1000 (`shipping.invalid_quantity`) or malformed request (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than 100 lines (`shipping.too_many_items`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Shipping unavailable (`shipping.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_quote(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    body: web::Json<QuoteRequest>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_quote(&ctx, body.into_inner()).await?))
}

/// Ships these items to this address under a new tracking id.
#[utoipa::path(
    post,
    path = "/api/shipping/v1/shipments",
    tag = "shipping",
    request_body = ShipOrderRequest,
    responses(
        (status = 201, description = "The shipment that was made", body = Shipment,
            headers(("Location" = String, description = "Path of the new shipment"))),
        (status = 400, description = "Invalid address (`shipping.invalid_address`), quantity not between 1 and 1000 (`shipping.invalid_quantity`) or malformed request (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to ship (`shipping.no_items`) or more than 100 lines (`shipping.too_many_items`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Shipping unavailable (`shipping.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ship_order(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    body: web::Json<ShipOrderRequest>,
) -> Result<HttpResponse, Failure> {
    let shipment = api.ship_order(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            LOCATION,
            format!(
                "/api/shipping/v1/shipments/{}",
                encode(&shipment.tracking_id)
            ),
        ))
        .json(shipment))
}

/// The shipment with this tracking id.
#[utoipa::path(
    get,
    path = "/api/shipping/v1/shipments/{tracking_id}",
    tag = "shipping",
    params(("tracking_id" = String, Path, description = "Tracking id, e.g. `AB-12345-1234567`")),
    responses(
        (status = 200, description = "The shipment", body = Shipment),
        (status = 404, description = "No shipment has this (possibly malformed) tracking id (`shipping.shipment_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Shipping unavailable (`shipping.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_shipment(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    tracking_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_shipment(&ctx, tracking_id.into_inner()).await?))
}
