//! Contract of the `currency` module: exchange rates and conversion.
//!
//! - Owns: exchange rates (EUR-based table of ~30 ISO 4217 codes).
//! - Provides: [`CurrencyApi`]: `supported_currencies`, `convert`.
//! - Requires: nothing.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`CurrencyClient`] calls them.

use cleave_domain::{CurrencyCode, Money};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Body of `POST /convert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConvertRequest {
    /// The amount to convert.
    pub from: Money,
    /// The currency to convert it to.
    pub to_code: String,
}

/// Answer of `GET /currencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrencyList {
    /// Supported codes, sorted.
    pub currency_codes: Vec<CurrencyCode>,
}

/// Errors of the currency contract.
#[contract_error(module = "currency")]
pub enum CurrencyError {
    /// The code is malformed or not in the rate table.
    #[api(status = 400)]
    #[error("currency {currency_code:?} is not supported")]
    UnsupportedCurrency {
        /// The code given.
        currency_code: String,
    },
    /// The amount breaks the money invariant or cannot be converted.
    #[api(status = 400)]
    #[error("invalid amount: {detail}")]
    InvalidMoney {
        /// What is wrong.
        detail: String,
    },
}

/// Exchange rates and conversion: the currency contract. Reach the currency module only through this trait.
#[contract(module = "currency", error = CurrencyError, client = CurrencyClient, http = http)]
pub trait CurrencyApi: Send + Sync {
    /// Every currency code that [`CurrencyApi::convert`] accepts, sorted.
    #[op(GET "/currencies", read_only, cached, access(anyone))]
    #[rest(responses((status = 200, description = "The supported codes, sorted", body = CurrencyList)))]
    async fn supported_currencies(
        &self,
        ctx: &CallContext,
    ) -> Result<Vec<CurrencyCode>, CurrencyError>;

    /// Converts `from` into `to_code` at the reference rates, exactly, rounding half away from
    /// zero to whole nanos.
    #[op(POST "/convert", read_only, cached, access(anyone), errors(UnsupportedCurrency, InvalidMoney))]
    #[rest(
        request_body = ConvertRequest,
        responses((status = 200, description = "The converted amount", body = Money))
    )]
    async fn convert(
        &self,
        ctx: &CallContext,
        from: Money,
        to_code: String,
    ) -> Result<Money, CurrencyError>;
}

#[async_trait]
impl CurrencyApi for CurrencyClient {
    async fn supported_currencies(
        &self,
        ctx: &CallContext,
    ) -> Result<Vec<CurrencyCode>, CurrencyError> {
        let list: CurrencyList = self
            .remote
            .op(&ops::SUPPORTED_CURRENCIES, ctx)
            .fetch()
            .await?;
        Ok(list.currency_codes)
    }

    async fn convert(
        &self,
        ctx: &CallContext,
        from: Money,
        to_code: String,
    ) -> Result<Money, CurrencyError> {
        self.remote
            .op(&ops::CONVERT, ctx)
            .json(&ConvertRequest { from, to_code })
            .fetch()
            .await
    }
}
