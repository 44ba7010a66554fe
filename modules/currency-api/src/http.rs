//! The currency module's REST API, served from any [`CurrencyApi`].

use actix_web::{HttpResponse, web};
use cleave_domain::Money;
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};

use crate::{ConvertRequest, CurrencyApi, CurrencyList, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(currencies, convert),
    components(schemas(ConvertRequest, CurrencyList)),
    tags((name = "currency", description = "Exchange rates and conversion"))
)]
pub struct ApiDoc;

/// The routes of the currency module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::SUPPORTED_CURRENCIES, currencies)
        .add(&ops::CONVERT, convert);
}

/// Every currency code that `POST /convert` accepts.
#[utoipa::path(
    get,
    path = ops::SUPPORTED_CURRENCIES.path,
    tag = "currency",
    responses(
        (status = 200, description = "The supported codes, sorted", body = CurrencyList),
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
    path = ops::CONVERT.path,
    tag = "currency",
    request_body = ConvertRequest,
    responses(
        (status = 200, description = "The converted amount", body = Money),
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
