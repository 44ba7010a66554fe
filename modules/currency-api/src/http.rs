//! The currency module's REST API, served from any [`CurrencyApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::Money;
use cleave_kernel::{CallContext, Failure, Problem};

use crate::{ConvertRequest, CurrencyApi, CurrencyList};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(currencies, convert),
    components(schemas(ConvertRequest, CurrencyList)),
    tags((name = "currency", description = "Exchange rates and conversion"))
)]
pub struct ApiDoc;

/// Registers `/api/currency/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn CurrencyApi>) {
    cfg.service(
        web::scope("/api/currency/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/currencies").route(web::get().to(currencies)))
            .service(web::resource("/convert").route(web::post().to(convert))),
    );
}

/// Every currency code that `POST /convert` accepts.
#[utoipa::path(
    get,
    path = "/api/currency/v1/currencies",
    tag = "currency",
    responses(
        (status = 200, description = "The supported codes, sorted", body = CurrencyList),
        (status = 503, description = "Currency module unavailable (`currency.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn currencies(
    ctx: CallContext,
    api: web::Data<dyn CurrencyApi>,
) -> Result<HttpResponse, Failure> {
    let currency_codes = api.supported_currencies(&ctx).await?;
    Ok(HttpResponse::Ok().json(CurrencyList { currency_codes }))
}

/// Converts an amount into another currency at the reference rates.
#[utoipa::path(
    post,
    path = "/api/currency/v1/convert",
    tag = "currency",
    request_body = ConvertRequest,
    responses(
        (status = 200, description = "The converted amount", body = Money),
        (status = 400, description = "Unknown or malformed currency code (`currency.unsupported_currency`), amount breaking the money invariant (`currency.invalid_money`) or malformed request (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Currency module unavailable (`currency.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn convert(
    ctx: CallContext,
    api: web::Data<dyn CurrencyApi>,
    body: web::Json<ConvertRequest>,
) -> Result<HttpResponse, Failure> {
    let ConvertRequest { from, to_code } = body.into_inner();
    Ok(HttpResponse::Ok().json(api.convert(&ctx, from, to_code).await?))
}
