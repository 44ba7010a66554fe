//! The shipping module's REST API, served from any [`ShippingApi`].

use actix_web::web;
use cleave_kernel::http::{Call, Reply, Routes, created, ok};

use crate::{QuoteRequest, ShipOrderRequest, ShippingApi, ops};

/// The routes of the shipping module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::GET_QUOTE, get_quote)
        .add(&ops::SHIP_ORDER, ship_order)
        .add(&ops::GET_SHIPMENT, get_shipment);
}

/// What shipping these items to this address would cost; nothing is stored.
async fn get_quote(c: Call<dyn ShippingApi>, body: web::Json<QuoteRequest>) -> Reply {
    ok(c.api.get_quote(&c.ctx, body.into_inner()).await?)
}

/// Ships these items to this address under a new tracking id.
async fn ship_order(c: Call<dyn ShippingApi>, body: web::Json<ShipOrderRequest>) -> Reply {
    let shipment = c.api.ship_order(&c.ctx, body.into_inner()).await?;
    created(
        ops::GET_SHIPMENT.path_with(&[&shipment.tracking_id]),
        shipment,
    )
}

/// The shipment with this tracking id.
async fn get_shipment(c: Call<dyn ShippingApi>, tracking_id: web::Path<String>) -> Reply {
    ok(c.api.get_shipment(&c.ctx, tracking_id.into_inner()).await?)
}
