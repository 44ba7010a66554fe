//! Contract of the `email` module: order confirmations sent to shoppers.
//!
//! - Owns: sent confirmations (what was sent, to whom, when).
//! - Provides: [`EmailApi`]: `send_order_confirmation`, `list_confirmations`. The module also
//!   subscribes to checkout's `OrderPlaced` event and sends the confirmation itself.
//! - Requires: nothing.
//!
//! REST (served by [`http::configure`], called by [`EmailClient`]):
//! `POST /api/email/v1/confirmations` → 201 [`Confirmation`] (the first one, when `message_id`
//! was sent before), `GET /api/email/v1/confirmations?order_id=...`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use cleave_kernel::CallContext;
use cleave_kernel::client::{Method, RemoteClient, encode};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::ModuleSpec;
use cleave_kernel::types::{Address, Money};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// The module's name, config section and route prefix.
pub const MODULE: &str = "email";

/// Most lines one confirmation lists.
pub const MAX_LINES: usize = 100;

/// What the email module is.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: MODULE,
    owns: "sent confirmations",
    provides: &["send_order_confirmation", "list_confirmations"],
    requires: &[],
};

/// One line of the order being confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryLine {
    /// Product name.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// What the line cost.
    pub cost: Money,
}

/// What a confirmation says about the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderSummary {
    /// The order's id.
    pub order_id: String,
    /// The shipment's tracking id.
    pub tracking_id: String,
    /// Shipping cost.
    pub shipping_cost: Money,
    /// Total charged.
    pub total: Money,
    /// The lines.
    pub lines: Vec<SummaryLine>,
    /// Where it ships.
    pub address: Address,
}

/// A request to confirm an order by e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfirmationRequest {
    /// Makes sending idempotent: a second request with the same id sends nothing and returns
    /// the first confirmation. For event-driven sends it is the event's id.
    pub message_id: String,
    /// The recipient.
    pub email: String,
    /// The order.
    pub order: OrderSummary,
}

/// A confirmation as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Confirmation {
    /// The message id (see [`ConfirmationRequest::message_id`]).
    pub message_id: String,
    /// The order confirmed.
    pub order_id: String,
    /// The recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// The rendered plain-text body.
    pub body: String,
    /// When it was sent (RFC 3339, UTC).
    pub sent_at: String,
}

/// Errors of the email contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "params")]
pub enum EmailError {
    /// A field of the request is malformed.
    #[serde(rename = "email.invalid_request")]
    #[error("invalid confirmation request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },
    /// The email module (its storage or mail transport) cannot be reached.
    #[serde(rename = "email.unavailable")]
    #[error("email is unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
    /// A bug in the email module.
    #[serde(rename = "email.internal")]
    #[error("email internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
}

impl ApiError for EmailError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "email.invalid_request",
            Self::Unavailable { .. } => "email.unavailable",
            Self::Internal { .. } => "email.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
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

/// Checks a request: a message id, a plausible recipient, valid money, a valid address and
/// at most [`MAX_LINES`] lines.
///
/// # Errors
/// [`EmailError::InvalidRequest`] naming the field.
pub fn validate(req: &ConfirmationRequest) -> Result<(), EmailError> {
    let invalid = |detail: String| Err(EmailError::InvalidRequest { detail });
    if req.message_id.is_empty()
        || req.message_id.len() > 64
        || !req
            .message_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return invalid("message_id must be 1 to 64 letters, digits or dashes".into());
    }
    if req.email.len() > 254
        || req
            .email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        || !req.email.contains('@')
    {
        return invalid("email is not an address".into());
    }
    if req.order.order_id.is_empty() || req.order.order_id.len() > 64 {
        return invalid("order.order_id must be 1 to 64 characters".into());
    }
    if req.order.lines.len() > MAX_LINES {
        return invalid(format!("an order lists at most {MAX_LINES} lines"));
    }
    req.order
        .address
        .validate()
        .map_err(|e| EmailError::InvalidRequest { detail: e.0 })?;
    for money in [&req.order.total, &req.order.shipping_cost]
        .into_iter()
        .chain(req.order.lines.iter().map(|l| &l.cost))
    {
        money
            .validate()
            .map_err(|e| EmailError::InvalidRequest { detail: e.0 })?;
    }
    Ok(())
}

/// The email contract. Reach the email module only through this trait.
#[async_trait]
pub trait EmailApi: Send + Sync {
    /// Renders and sends the confirmation of an order, once per `message_id`: a repeated
    /// request returns the first confirmation without sending again.
    ///
    /// # Errors
    /// [`EmailError::InvalidRequest`], [`EmailError::Unavailable`].
    async fn send_order_confirmation(
        &self,
        ctx: &CallContext,
        req: ConfirmationRequest,
    ) -> Result<Confirmation, EmailError>;

    /// The confirmations sent for an order, oldest first.
    ///
    /// # Errors
    /// [`EmailError::Unavailable`].
    async fn list_confirmations(
        &self,
        ctx: &CallContext,
        order_id: String,
    ) -> Result<Vec<Confirmation>, EmailError>;
}

/// The email module in another process, reached over its REST API.
#[derive(Debug, Clone)]
pub struct EmailClient {
    remote: RemoteClient,
}

impl EmailClient {
    /// A client calling through `remote`.
    pub fn new(remote: RemoteClient) -> Self {
        Self { remote }
    }

    /// As a shared contract object.
    pub fn into_api(self) -> Arc<dyn EmailApi> {
        Arc::new(self)
    }
}

#[async_trait]
impl EmailApi for EmailClient {
    async fn send_order_confirmation(
        &self,
        ctx: &CallContext,
        req: ConfirmationRequest,
    ) -> Result<Confirmation, EmailError> {
        self.remote
            .send_json(ctx, Method::POST, "/api/email/v1/confirmations", &req)
            .await
            .map_err(|e| e.into_api_error())
    }

    async fn list_confirmations(
        &self,
        ctx: &CallContext,
        order_id: String,
    ) -> Result<Vec<Confirmation>, EmailError> {
        self.remote
            .get_json(
                ctx,
                &format!("/api/email/v1/confirmations?order_id={}", encode(&order_id)),
            )
            .await
            .map_err(|e| e.into_api_error())
    }
}
