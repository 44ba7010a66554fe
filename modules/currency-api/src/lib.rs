//! Contract of the `currency` module: exchange rates and conversion.
//!
//! - Owns: exchange rates (EUR-based table of ~30 ISO 4217 codes).
//! - Provides: [`CurrencyApi`]: `supported_currencies`, `convert`.
//! - Requires: nothing.
//!
//! REST (served by [`http::configure`], called by [`CurrencyClient`]):
//! `GET /api/currency/v1/currencies`, `POST /api/currency/v1/convert` `{"from": Money, "to_code"}`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use cleave_kernel::CallContext;
use cleave_kernel::client::{Method, RemoteClient};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::ModuleSpec;
use cleave_kernel::types::{CurrencyCode, Money};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// The module's name, config section and route prefix.
pub const MODULE: &str = "currency";

/// What the currency module is.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: MODULE,
    owns: "exchange rates",
    provides: &["supported_currencies", "convert"],
    requires: &[],
};

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "params")]
pub enum CurrencyError {
    /// The code is malformed or not in the rate table.
    #[serde(rename = "currency.unsupported_currency")]
    #[error("currency {currency_code:?} is not supported")]
    UnsupportedCurrency {
        /// The code given.
        currency_code: String,
    },
    /// The amount breaks the money invariant or cannot be converted.
    #[serde(rename = "currency.invalid_money")]
    #[error("invalid amount: {detail}")]
    InvalidMoney {
        /// What is wrong.
        detail: String,
    },
    /// The currency module (or its storage) cannot be reached.
    #[serde(rename = "currency.unavailable")]
    #[error("currency is unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
    /// A bug in the currency module.
    #[serde(rename = "currency.internal")]
    #[error("currency internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
}

impl ApiError for CurrencyError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedCurrency { .. } => "currency.unsupported_currency",
            Self::InvalidMoney { .. } => "currency.invalid_money",
            Self::Unavailable { .. } => "currency.unavailable",
            Self::Internal { .. } => "currency.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedCurrency { .. } | Self::InvalidMoney { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable { reason }
    }

    fn internal(reason: String) -> Self {
        Self::Internal { reason }
    }
}

/// The currency contract. Reach the currency module only through this trait.
#[async_trait]
pub trait CurrencyApi: Send + Sync {
    /// Every currency code that [`CurrencyApi::convert`] accepts, sorted.
    ///
    /// # Errors
    /// [`CurrencyError::Unavailable`].
    async fn supported_currencies(
        &self,
        ctx: &CallContext,
    ) -> Result<Vec<CurrencyCode>, CurrencyError>;

    /// Converts `from` into `to_code` at the reference rates, exactly, rounding half away from
    /// zero to whole nanos.
    ///
    /// # Errors
    /// [`CurrencyError::UnsupportedCurrency`] for an unknown or malformed code on either side;
    /// [`CurrencyError::InvalidMoney`] when `from` breaks the money invariant;
    /// [`CurrencyError::Unavailable`].
    async fn convert(
        &self,
        ctx: &CallContext,
        from: Money,
        to_code: String,
    ) -> Result<Money, CurrencyError>;
}

/// The currency module in another process, reached over its REST API.
#[derive(Debug, Clone)]
pub struct CurrencyClient {
    remote: RemoteClient,
}

impl CurrencyClient {
    /// A client calling through `remote`.
    pub fn new(remote: RemoteClient) -> Self {
        Self { remote }
    }

    /// As a shared contract object.
    pub fn into_api(self) -> Arc<dyn CurrencyApi> {
        Arc::new(self)
    }
}

#[async_trait]
impl CurrencyApi for CurrencyClient {
    async fn supported_currencies(
        &self,
        ctx: &CallContext,
    ) -> Result<Vec<CurrencyCode>, CurrencyError> {
        self.remote
            .get_json::<CurrencyList>(ctx, "/api/currency/v1/currencies")
            .await
            .map(|l| l.currency_codes)
            .map_err(|e| e.into_api_error())
    }

    async fn convert(
        &self,
        ctx: &CallContext,
        from: Money,
        to_code: String,
    ) -> Result<Money, CurrencyError> {
        self.remote
            .send_json(
                ctx,
                Method::POST,
                "/api/currency/v1/convert",
                &ConvertRequest { from, to_code },
            )
            .await
            .map_err(|e| e.into_api_error())
    }
}
