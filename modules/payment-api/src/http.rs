//! The payment module's REST API, served from any [`PaymentApi`].

use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use cleave_kernel::client::encode;
use cleave_kernel::{CallContext, Failure};

use crate::{ChargeRequest, PaymentApi};

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

async fn find_charge(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    query: web::Query<FindQuery>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.find_charge(&ctx, query.into_inner().reference).await?))
}

async fn refund(
    ctx: CallContext,
    api: web::Data<dyn PaymentApi>,
    transaction_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.refund(&ctx, transaction_id.into_inner()).await?))
}
