//! Contract of the `email` module: order confirmations sent to shoppers.
//!
//! - Owns: sent confirmations (what was sent, to whom, when).
//! - Provides: [`EmailApi`]: `send_order_confirmation`, `list_confirmations`. The module also
//!   subscribes to checkout's `OrderPlaced` event and sends the confirmation itself.
//! - Requires: nothing.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`EmailClient`] calls them.

use cleave_domain::{Address, Money};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Most lines one confirmation lists.
pub const MAX_LINES: usize = 100;

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
#[contract_error(
    module = "email",
    unavailable = "The email module (its storage or mail transport) cannot be reached."
)]
pub enum EmailError {
    /// A field of the request is malformed.
    #[api(status = 400)]
    #[error("invalid confirmation request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },
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

/// Order confirmations sent by e-mail: the email contract. Reach the email module only through this trait.
#[contract(module = "email", error = EmailError, client = EmailClient, http = http)]
pub trait EmailApi: Send + Sync {
    /// Renders and sends the confirmation of an order, once per `message_id`: a repeated
    /// request returns the first confirmation without sending again.
    #[op(POST "/confirmations", idempotent, access(admin, modules(checkout)), errors(InvalidRequest))]
    #[rest(
        request_body = ConfirmationRequest,
        responses((status = 201, description = "The confirmation as sent (or as first sent, for a repeated `message_id`)", body = Confirmation))
    )]
    async fn send_order_confirmation(
        &self,
        ctx: &CallContext,
        req: ConfirmationRequest,
    ) -> Result<Confirmation, EmailError>;

    /// The confirmations sent for an order, oldest first.
    #[op(GET "/confirmations", read_only, access(admin), errors(InvalidRequest))]
    #[rest(
        params(("order_id" = String, Query, description = "The order whose confirmations to list")),
        responses((status = 200, description = "The confirmations (empty when none)", body = [Confirmation]))
    )]
    async fn list_confirmations(
        &self,
        ctx: &CallContext,
        order_id: String,
    ) -> Result<Vec<Confirmation>, EmailError>;
}

#[async_trait]
impl EmailApi for EmailClient {
    async fn send_order_confirmation(
        &self,
        ctx: &CallContext,
        req: ConfirmationRequest,
    ) -> Result<Confirmation, EmailError> {
        self.remote
            .op(&ops::SEND_ORDER_CONFIRMATION, ctx)
            .json(&req)
            .fetch()
            .await
    }

    async fn list_confirmations(
        &self,
        ctx: &CallContext,
        order_id: String,
    ) -> Result<Vec<Confirmation>, EmailError> {
        self.remote
            .op(&ops::LIST_CONFIRMATIONS, ctx)
            .query("order_id", &order_id)
            .fetch()
            .await
    }
}
