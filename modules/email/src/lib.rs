//! The `email` module: renders and sends order confirmations, once per message.
//!
//! - Owns: table `email_confirmations` (migrations in `cleave-migrations::email`).
//! - Provides: [`email_api::EmailApi`] through [`EmailModule`]; subscribes to checkout's
//!   `OrderPlaced` ([`EmailModule::subscribe`]), using the event id as the message id, so a
//!   redelivered event sends nothing twice.
//! - Requires: nothing (it consumes checkout's events; it never calls checkout).
//!
//! The confirmation is recorded first (the primary key on the message id is the dedupe),
//! then handed to the configured transport: the log, or a file per message in a directory.
//! SMTP comes later behind the same [`MailTransport`] switch.

mod entity;

use cleave_kernel::module;
use cleave_kernel::module::{Start, StartError};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use checkout_api::OrderPlaced;
use cleave_kernel::events::{Event, EventBus, EventError, Subscriber, Topic, now_ms};
use cleave_kernel::{ApiError, CallContext};
use email_api::{
    Confirmation, ConfirmationRequest, EmailApi, EmailError, OrderSummary, SummaryLine, validate,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};

/// Where sent mail goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailTransport {
    /// An info log line per message (no recipient, no body: they are personal data).
    #[default]
    Log,
    /// One `<message_id>.txt` file per message in `modules.email.dir`.
    File,
}

/// Settings of `[modules.email]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// Where sent mail goes.
    pub transport: MailTransport,
    /// The directory of the `file` transport (created when missing).
    pub dir: PathBuf,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::Log,
            dir: PathBuf::from("data/mail"),
        }
    }
}

/// What the email module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct EmailDeps;

/// The email module, in process.
#[module(contract = email_api::EmailContract, config = EmailConfig, owns = "sent confirmations",
    subscribes = ["checkout"])]
pub struct EmailModule {
    db: DatabaseConnection,
    config: EmailConfig,
}

impl EmailModule {
    /// The module over its (migrated) database.
    pub fn new(db: DatabaseConnection, config: &EmailConfig, _deps: EmailDeps) -> Arc<Self> {
        Arc::new(Self {
            db,
            config: config.clone(),
        })
    }

    /// Subscribes the module to `OrderPlaced` on `bus`.
    pub fn subscribe(self: &Arc<Self>, bus: &dyn EventBus) {
        bus.subscribe(
            OrderPlaced::TOPIC,
            "email.order_confirmation",
            Arc::new(OrderPlacedSubscriber(self.clone())),
        );
    }

    async fn deliver(&self, confirmation: &Confirmation) -> Result<(), EmailError> {
        match self.config.transport {
            // The message is the log line written once the sending is committed.
            MailTransport::Log => Ok(()),
            MailTransport::File => {
                let unavailable = |e: std::io::Error| {
                    EmailError::unavailable(format!(
                        "mail directory {}: {e}",
                        self.config.dir.display()
                    ))
                };
                tokio::fs::create_dir_all(&self.config.dir)
                    .await
                    .map_err(unavailable)?;
                let text = format!(
                    "To: {}\nSubject: {}\nDate: {}\n\n{}",
                    confirmation.to, confirmation.subject, confirmation.sent_at, confirmation.body
                );
                let path = self
                    .config
                    .dir
                    .join(format!("{}.txt", confirmation.message_id));
                tokio::fs::write(&path, text).await.map_err(unavailable)?;
                Ok(())
            }
        }
    }
}

fn storage_error(err: DbErr) -> EmailError {
    cleave_kernel::db::storage_error(&err)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn to_confirmation(row: entity::Model) -> Confirmation {
    Confirmation {
        message_id: row.message_id,
        order_id: row.order_id,
        to: row.recipient,
        subject: row.subject,
        body: row.body,
        sent_at: rfc3339(row.sent_at_ms),
    }
}

/// Renders the plain-text confirmation.
fn render(order: &OrderSummary) -> (String, String) {
    let subject = format!("Your Cleave Boutique order {}", order.order_id);
    let mut body = String::new();
    body.push_str("Thank you for your order!\n\n");
    body.push_str(&format!("Order: {}\n", order.order_id));
    body.push_str(&format!("Tracking: {}\n\n", order.tracking_id));
    for SummaryLine {
        name,
        quantity,
        cost,
    } in &order.lines
    {
        body.push_str(&format!("  {quantity} x {name}  {cost}\n"));
    }
    body.push_str(&format!("\nShipping: {}\n", order.shipping_cost));
    body.push_str(&format!("Total: {}\n\n", order.total));
    let a = &order.address;
    body.push_str("Ships to:\n");
    body.push_str(&format!("  {}\n", a.street_address));
    body.push_str(&format!("  {} {} {}\n", a.zip_code, a.city, a.state));
    body.push_str(&format!("  {}\n", a.country));
    (subject, body)
}

#[async_trait]
impl EmailApi for EmailModule {
    async fn send_order_confirmation(
        &self,
        _ctx: &CallContext,
        req: ConfirmationRequest,
    ) -> Result<Confirmation, EmailError> {
        validate(&req)?;
        let (subject, body) = render(&req.order);
        let row = entity::ActiveModel {
            message_id: ActiveValue::Set(req.message_id.clone()),
            order_id: ActiveValue::Set(req.order.order_id.clone()),
            recipient: ActiveValue::Set(req.email.clone()),
            subject: ActiveValue::Set(subject),
            body: ActiveValue::Set(body),
            sent_at_ms: ActiveValue::Set(now_ms()),
        };
        // The primary key on the message id is the dedupe: a repeat inserts nothing. The
        // insert and the sending share one transaction, so an overlapping delivery of the
        // same message waits on the row until this one has sent and committed (then finds it
        // and does nothing) or failed and rolled back (then sends it itself): it can neither
        // send twice nor acknowledge a message whose sending failed.
        let txn = self.db.begin().await.map_err(storage_error)?;
        let inserted = entity::Entity::insert(row)
            .on_conflict(
                OnConflict::column(entity::Column::MessageId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(storage_error)?;
        let stored = entity::Entity::find_by_id(req.message_id.clone())
            .one(&txn)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| EmailError::Internal {
                reason: format!("confirmation {} vanished after insert", req.message_id),
            })?;
        let confirmation = to_confirmation(stored);
        if inserted > 0
            && let Err(e) = self.deliver(&confirmation).await
        {
            // Not sent: nothing is recorded, and a redelivery tries again.
            txn.rollback().await.map_err(storage_error)?;
            return Err(e);
        }
        txn.commit().await.map_err(storage_error)?;
        if inserted > 0 {
            // Said once committed: whoever reads the confirmations after this line finds it.
            tracing::info!(
                message_id = %confirmation.message_id,
                order_id = %confirmation.order_id,
                "order confirmation sent"
            );
        }
        Ok(confirmation)
    }

    async fn list_confirmations(
        &self,
        _ctx: &CallContext,
        order_id: String,
    ) -> Result<Vec<Confirmation>, EmailError> {
        let rows = entity::Entity::find()
            .filter(entity::Column::OrderId.eq(order_id))
            .order_by_asc(entity::Column::SentAtMs)
            .order_by_asc(entity::Column::MessageId)
            .all(&self.db)
            .await
            .map_err(storage_error)?;
        Ok(rows.into_iter().map(to_confirmation).collect())
    }
}

/// Confirms every placed order; the event id is the message id.
struct OrderPlacedSubscriber(Arc<EmailModule>);

/// The confirmation request an `OrderPlaced` event calls for.
pub fn confirmation_for(event_id: &str, placed: &OrderPlaced) -> ConfirmationRequest {
    let order = &placed.order;
    ConfirmationRequest {
        message_id: event_id.to_owned(),
        email: order.email.clone(),
        order: OrderSummary {
            order_id: order.order_id.clone(),
            tracking_id: order.shipping_tracking_id.clone(),
            shipping_cost: order.shipping_cost.clone(),
            total: order.total.clone(),
            lines: order
                .items
                .iter()
                .map(|i| SummaryLine {
                    name: i.name.clone(),
                    quantity: i.quantity,
                    cost: i.cost.clone(),
                })
                .collect(),
            address: order.shipping_address.clone(),
        },
    }
}

#[async_trait]
impl Subscriber for OrderPlacedSubscriber {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        let placed: OrderPlaced = event.decode()?;
        let ctx = CallContext::new(
            cleave_kernel::context::RequestId::from_header(Some(&event.request_id)),
            None,
        );
        self.0
            .send_order_confirmation(&ctx, confirmation_for(&event.id.to_string(), &placed))
            .await
            .map(|_| ())
            .map_err(|e| EventError::Handler {
                subscriber: "email.order_confirmation".into(),
                reason: e.to_string(),
            })
    }
}

impl EmailModule {
    /// Starts the module from what the process gives it (see `#[module]`).
    async fn from_start(start: Start<'_, EmailConfig>) -> Result<Arc<Self>, StartError> {
        let module = EmailModule::new(start.db()?, start.config(), EmailDeps);
        module.subscribe(start.bus());
        Ok(module)
    }
}
