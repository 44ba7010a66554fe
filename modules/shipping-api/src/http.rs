//! The shipping module's REST API, served from any [`ShippingApi`].

use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::client::encode;
use cleave_kernel::{CallContext, Failure};

use crate::{QuoteRequest, ShipOrderRequest, ShippingApi};

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

async fn get_quote(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    body: web::Json<QuoteRequest>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_quote(&ctx, body.into_inner()).await?))
}

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

async fn get_shipment(
    ctx: CallContext,
    api: web::Data<dyn ShippingApi>,
    tracking_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.get_shipment(&ctx, tracking_id.into_inner()).await?))
}
