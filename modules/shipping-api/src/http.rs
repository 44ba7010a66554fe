//! The shipping module's REST API, served from any [`ShippingApi`].

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};

use crate::{Quote, QuoteRequest, ShipOrderRequest, Shipment, ShippingApi, ShippingItem, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_quote, ship_order, get_shipment),
    components(schemas(ShippingItem, QuoteRequest, Quote, ShipOrderRequest, Shipment)),
    tags((name = "shipping", description = "Shipping quotes and shipments"))
)]
pub struct ApiDoc;

/// The routes of the shipping module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::GET_QUOTE, get_quote)
        .add(&ops::SHIP_ORDER, ship_order)
        .add(&ops::GET_SHIPMENT, get_shipment);
}

/// What shipping these items to this address would cost; nothing is stored.
#[utoipa::path(
    post,
    path = ops::GET_QUOTE.path,
    tag = "shipping",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The quote, in USD", body = Quote),
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
    path = ops::SHIP_ORDER.path,
    tag = "shipping",
    request_body = ShipOrderRequest,
    responses(
        (status = 201, description = "The shipment that was made", body = Shipment,
            headers(("Location" = String, description = "Path of the new shipment"))),
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
            ops::GET_SHIPMENT.path_with(&[&shipment.tracking_id]),
        ))
        .json(shipment))
}

/// The shipment with this tracking id.
#[utoipa::path(
    get,
    path = ops::GET_SHIPMENT.path,
    tag = "shipping",
    params(("tracking_id" = String, Path, description = "Tracking id, e.g. `AB-12345-1234567`")),
    responses(
        (status = 200, description = "The shipment", body = Shipment),
    )
)]
async fn get_shipment(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    tracking_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_shipment(&ctx, tracking_id.into_inner()).await?))
}
