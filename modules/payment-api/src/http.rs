//! The payment module's REST API, served from any [`PaymentApi`].

use actix_web::web;
use cleave_kernel::http::{Call, Reply, Routes, created, ok};

use crate::{ChargeRequest, PaymentApi, ops};

/// The routes of the payment module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::CHARGE, charge)
        .add(&ops::FIND_CHARGE, find_charge)
        .add(&ops::GET_CHARGE, get_charge)
        .add(&ops::REFUND, refund);
}

/// Charges an amount to a card (a repeated reference returns the first charge).
async fn charge(c: Call<dyn PaymentApi>, body: web::Json<ChargeRequest>) -> Reply {
    let charge = c.api.charge(&c.ctx, body.into_inner()).await?;
    let location = ops::GET_CHARGE.path_with(&[&charge.transaction_id]);
    created(location, charge)
}

/// The charge with this transaction id.
async fn get_charge(c: Call<dyn PaymentApi>, transaction_id: web::Path<String>) -> Reply {
    ok(c.api
        .get_charge(&c.ctx, transaction_id.into_inner())
        .await?)
}

#[derive(serde::Deserialize)]
struct FindQuery {
    reference: String,
}

/// The charge made with a reference.
async fn find_charge(c: Call<dyn PaymentApi>, query: web::Query<FindQuery>) -> Reply {
    ok(c.api
        .find_charge(&c.ctx, query.into_inner().reference)
        .await?)
}

/// Refunds a charge in full (refunding a refunded charge changes nothing). Takes no body.
async fn refund(c: Call<dyn PaymentApi>, transaction_id: web::Path<String>) -> Reply {
    ok(c.api.refund(&c.ctx, transaction_id.into_inner()).await?)
}
