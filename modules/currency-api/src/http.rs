//! The currency module's REST API, served from any [`CurrencyApi`].

use actix_web::web;
use cleave_kernel::http::{Call, Reply, Routes, ok};

use crate::{ConvertRequest, CurrencyApi, CurrencyList, ops};

/// The routes of the currency module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::SUPPORTED_CURRENCIES, currencies)
        .add(&ops::CONVERT, convert);
}

/// Every currency code that `POST /convert` accepts.
async fn currencies(c: Call<dyn CurrencyApi>) -> Reply {
    let currency_codes = c.api.supported_currencies(&c.ctx).await?;
    ok(CurrencyList { currency_codes })
}

/// Converts an amount into another currency at the reference rates.
async fn convert(c: Call<dyn CurrencyApi>, body: web::Json<ConvertRequest>) -> Reply {
    let ConvertRequest { from, to_code } = body.into_inner();
    ok(c.api.convert(&c.ctx, from, to_code).await?)
}
