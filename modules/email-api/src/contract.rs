//! The email contract suite: what every [`EmailApi`] must do. Uses fresh ids.

use cleave_domain::{Address, Money};
use cleave_kernel::CallContext;
use cleave_kernel::testing::refusal;

use crate::{ConfirmationRequest, EmailApi, EmailError, OrderSummary, SummaryLine};

fn usd(units: i64, nanos: i32) -> Money {
    Money::new("USD", units, nanos).expect("money")
}

/// A request for a fresh order.
pub fn request() -> ConfirmationRequest {
    let id = CallContext::root().request_id().as_str().to_owned();
    ConfirmationRequest {
        message_id: format!("m-{id}"),
        email: "someone@example.com".into(),
        order: OrderSummary {
            order_id: format!("o-{id}"),
            tracking_id: "AB-12345-1234567".into(),
            shipping_cost: usd(8, 990_000_000),
            total: usd(46, 970_000_000),
            lines: vec![SummaryLine {
                name: "Sunglasses".into(),
                quantity: 2,
                cost: usd(37, 980_000_000),
            }],
            address: Address::example(),
        },
    }
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
/// `admin` acts for an admin (confirmations are for admins and the checkout module).
pub async fn run(label: &str, api: &dyn EmailApi, admin: &CallContext) {
    let ctx = admin.clone();
    let anonymous = CallContext::root();
    let req = request();
    let order_id = req.order.order_id.clone();
    assert!(
        api.list_confirmations(&ctx, order_id.clone())
            .await
            .expect("list")
            .is_empty(),
        "[{label}] nothing sent yet"
    );
    // Confirmations hold addresses: strangers neither read nor send them.
    let refused = api.list_confirmations(&anonymous, order_id.clone()).await;
    assert_eq!(refusal(&refused), Some(401), "[{label}] {refused:?}");
    let refused = api.send_order_confirmation(&anonymous, req.clone()).await;
    assert_eq!(refusal(&refused), Some(401), "[{label}] {refused:?}");
    let sent = api
        .send_order_confirmation(&ctx, req.clone())
        .await
        .expect("send");
    assert_eq!(sent.order_id, order_id, "[{label}]");
    assert_eq!(sent.to, "someone@example.com", "[{label}]");
    assert!(
        sent.subject.contains(&order_id),
        "[{label}] subject names the order: {}",
        sent.subject
    );
    for needle in ["AB-12345-1234567", "Sunglasses", "46.97", "Mountain View"] {
        assert!(
            sent.body.contains(needle),
            "[{label}] body lacks {needle}: {}",
            sent.body
        );
    }
    // The same message id sends nothing new.
    let again = api
        .send_order_confirmation(&ctx, req.clone())
        .await
        .expect("send again");
    assert_eq!(
        again, sent,
        "[{label}] a repeat returns the first confirmation"
    );
    assert_eq!(
        api.list_confirmations(&ctx, order_id.clone())
            .await
            .expect("list"),
        vec![sent],
        "[{label}] sent once"
    );

    let mut bad = request();
    bad.email = "nobody".into();
    match api.send_order_confirmation(&ctx, bad).await {
        Err(EmailError::InvalidRequest { detail }) => {
            assert!(detail.contains("email"), "[{label}]")
        }
        other => panic!("[{label}] bad address gave {other:?}"),
    }
    let mut bad = request();
    bad.order.total.nanos = -5;
    assert!(
        matches!(
            api.send_order_confirmation(&ctx, bad).await,
            Err(EmailError::InvalidRequest { .. })
        ),
        "[{label}] invalid money refused"
    );
}
