//! The currency module's REST API, served from any [`CurrencyApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure};

use crate::{ConvertRequest, CurrencyApi, CurrencyList};

/// Registers `/api/currency/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn CurrencyApi>) {
    cfg.service(
        web::scope("/api/currency/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/currencies").route(web::get().to(currencies)))
            .service(web::resource("/convert").route(web::post().to(convert))),
    );
}

async fn currencies(
    ctx: CallContext,
    api: web::Data<dyn CurrencyApi>,
) -> Result<HttpResponse, Failure> {
    let currency_codes = api.supported_currencies(&ctx).await?;
    Ok(HttpResponse::Ok().json(CurrencyList { currency_codes }))
}

async fn convert(
    ctx: CallContext,
    api: web::Data<dyn CurrencyApi>,
    body: web::Json<ConvertRequest>,
) -> Result<HttpResponse, Failure> {
    let ConvertRequest { from, to_code } = body.into_inner();
    Ok(HttpResponse::Ok().json(api.convert(&ctx, from, to_code).await?))
}
