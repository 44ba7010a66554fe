//! The checkout contract suite: what every [`CheckoutApi`] must do, given a [`Fixture`] that
//! fills carts (checkout reads carts, it does not write them). Uses fresh user ids.

use async_trait::async_trait;
use cleave_domain::{Address, CreditCard, CurrencyCode, ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::context::Principal;
use cleave_kernel::testing::refusal;

use crate::{CheckoutApi, CheckoutError, IdempotencyKey, OrderStatus, PlaceOrderRequest};

/// What the suite needs besides the checkout itself.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Puts `quantity` of `product` in `user`'s cart.
    async fn add_to_cart(&self, user: &UserId, product: &ProductId, quantity: i64);
    /// How many lines `user`'s cart has.
    async fn cart_lines(&self, user: &UserId) -> usize;
    /// `user` signed in with `roles` (over HTTP the principal must carry a valid token).
    async fn principal(&self, user: &UserId, roles: &[&str]) -> Principal;
}

async fn as_user(fixture: &dyn Fixture, user: &UserId) -> CallContext {
    CallContext::root().with_principal(fixture.principal(user, &["shopper"]).await)
}

fn fresh_user() -> UserId {
    UserId::parse(format!("checkout-{}", CallContext::root().request_id())).expect("user id")
}

fn pid(raw: &str) -> ProductId {
    ProductId::parse(raw).expect("product id")
}

/// A card that is valid for years to come (Boutique's demo VISA).
pub fn good_card() -> CreditCard {
    CreditCard {
        number: "4432-8015-6152-0454".into(),
        cvv: "672".into(),
        expiration_year: 2039,
        expiration_month: 1,
    }
}

/// Boutique's demo address.
pub fn address() -> Address {
    Address::example()
}

/// A request for `user` paying in `currency` with [`good_card`].
pub fn request(user: &UserId, currency: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        user_id: user.clone(),
        user_currency: CurrencyCode::parse(currency).expect("currency"),
        address: address(),
        email: "someone@example.com".into(),
        credit_card: good_card(),
    }
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
pub async fn run(label: &str, api: &dyn CheckoutApi, fixture: &dyn Fixture) {
    let anonymous = CallContext::root();

    // A placed order prices every line in the chosen currency and adds shipping.
    let alice = fresh_user();
    let alice_ctx = as_user(fixture, &alice).await;
    fixture.add_to_cart(&alice, &pid("OLJCESPC7Z"), 2).await;
    fixture.add_to_cart(&alice, &pid("66VCHSJNUP"), 1).await;
    // Nobody orders anonymously, and nobody orders for someone else: the cart stays.
    let refused = api
        .place_order(&anonymous, request(&alice, "EUR"), None)
        .await;
    assert_eq!(refusal(&refused), Some(401), "[{label}] {refused:?}");
    let mallory = fresh_user();
    let mallory_ctx = as_user(fixture, &mallory).await;
    let refused = api
        .place_order(&mallory_ctx, request(&alice, "EUR"), None)
        .await;
    assert_eq!(refusal(&refused), Some(403), "[{label}] {refused:?}");
    assert_eq!(fixture.cart_lines(&alice).await, 2, "[{label}] cart kept");
    let order = api
        .place_order(&alice_ctx, request(&alice, "EUR"), None)
        .await
        .unwrap_or_else(|e| panic!("[{label}] place order: {e:?}"));
    assert_eq!(order.status, OrderStatus::Placed, "[{label}]");
    assert_eq!(order.user_id, alice, "[{label}]");
    assert_eq!(order.items.len(), 2, "[{label}]");
    let mut sum = order.shipping_cost.clone();
    for item in &order.items {
        assert_eq!(item.unit_price.currency_code, "EUR", "[{label}]");
        assert_eq!(
            item.cost,
            item.unit_price.checked_mul(item.quantity).expect("mul"),
            "[{label}]"
        );
        sum = sum.checked_add(&item.cost).expect("add");
    }
    assert_eq!(order.total, sum, "[{label}] total = lines + shipping");
    assert!(order.total.units > 0, "[{label}]");
    assert_eq!(order.card_last4, "0454", "[{label}]");
    assert!(!order.shipping_tracking_id.is_empty(), "[{label}]");
    assert!(!order.transaction_id.is_empty(), "[{label}]");
    assert_eq!(
        fixture.cart_lines(&alice).await,
        0,
        "[{label}] the cart was emptied"
    );
    assert_eq!(
        api.get_order(&alice_ctx, order.order_id.clone())
            .await
            .expect("get order"),
        order,
        "[{label}] the order reads back"
    );
    let listed = api
        .list_orders(&alice_ctx, alice.clone())
        .await
        .expect("list");
    assert_eq!(listed, vec![order.clone()], "[{label}]");

    // Orders are their owner's: others do not see them, anonymous callers are asked to sign
    // in, and only admins list everyone's.
    match api.get_order(&mallory_ctx, order.order_id.clone()).await {
        Err(CheckoutError::OrderNotFound { .. }) => {}
        other => panic!("[{label}] another user's order gave {other:?}"),
    }
    let listed = api.list_orders(&mallory_ctx, alice.clone()).await;
    assert_eq!(refusal(&listed), Some(403), "[{label}] {listed:?}");
    let read = api.get_order(&anonymous, order.order_id.clone()).await;
    assert_eq!(refusal(&read), Some(401), "[{label}] {read:?}");
    let all = api.list_all_orders(&alice_ctx, 10).await;
    assert_eq!(refusal(&all), Some(403), "[{label}] {all:?}");
    let admin_ctx =
        CallContext::root().with_principal(fixture.principal(&mallory, &["admin"]).await);
    let all = api
        .list_all_orders(&admin_ctx, 1000)
        .await
        .expect("admin lists");
    assert!(all.contains(&order), "[{label}] admins see every order");
    assert_eq!(
        api.get_order(&admin_ctx, order.order_id.clone())
            .await
            .expect("admin reads"),
        order,
        "[{label}]"
    );

    // Nothing to buy.
    match api
        .place_order(&alice_ctx, request(&alice, "EUR"), None)
        .await
    {
        Err(CheckoutError::EmptyCart) => {}
        other => panic!("[{label}] empty cart gave {other:?}"),
    }

    // Bad input is refused before anything happens; the cart stays.
    let bob = fresh_user();
    let ctx = as_user(fixture, &bob).await;
    fixture.add_to_cart(&bob, &pid("6E92ZMYYFZ"), 1).await;
    let mut bad = request(&bob, "USD");
    bad.email = "not-an-address".into();
    match api.place_order(&ctx, bad, None).await {
        Err(CheckoutError::InvalidRequest { detail }) => {
            assert!(detail.contains("email"), "[{label}] {detail}")
        }
        other => panic!("[{label}] bad email gave {other:?}"),
    }
    match api.place_order(&ctx, request(&bob, "XXX"), None).await {
        Err(CheckoutError::UnsupportedCurrency { currency_code }) => {
            assert_eq!(currency_code, "XXX", "[{label}]")
        }
        other => panic!("[{label}] unknown currency gave {other:?}"),
    }

    // A declined card places no order and keeps the cart.
    let mut expired = request(&bob, "USD");
    expired.credit_card.expiration_year = 2020;
    match api.place_order(&ctx, expired, None).await {
        Err(CheckoutError::PaymentDeclined { reason, .. }) => {
            assert_eq!(reason, "payment.card_expired", "[{label}]")
        }
        other => panic!("[{label}] expired card gave {other:?}"),
    }
    let mut luhn = request(&bob, "USD");
    luhn.credit_card.number = "4432-8015-6152-0455".into();
    match api.place_order(&ctx, luhn, None).await {
        Err(CheckoutError::PaymentDeclined { reason, detail }) => {
            assert_eq!(reason, "payment.invalid_card", "[{label}]");
            assert!(
                !detail.contains("4432"),
                "[{label}] the card number is not echoed: {detail}"
            );
        }
        other => panic!("[{label}] bad card number gave {other:?}"),
    }
    let bob_ctx = ctx.clone();
    assert!(
        api.list_orders(&bob_ctx, bob.clone())
            .await
            .expect("list")
            .is_empty(),
        "[{label}] no order after a decline"
    );
    assert_eq!(
        fixture.cart_lines(&bob).await,
        1,
        "[{label}] the cart is kept after a decline"
    );

    // The same idempotency key gives the same order; with another body it is refused.
    let key =
        IdempotencyKey::parse(format!("key-{}", CallContext::root().request_id())).expect("key");
    let first = api
        .place_order(&ctx, request(&bob, "USD"), Some(key.clone()))
        .await
        .expect("first");
    let again = api
        .place_order(&ctx, request(&bob, "USD"), Some(key.clone()))
        .await
        .expect("retry");
    assert_eq!(again, first, "[{label}] a retry returns the first result");
    assert_eq!(
        api.list_orders(&bob_ctx, bob.clone())
            .await
            .expect("list")
            .len(),
        1,
        "[{label}] one order"
    );
    match api.place_order(&ctx, request(&bob, "JPY"), Some(key)).await {
        Err(CheckoutError::IdempotencyKeyReused) => {}
        other => panic!("[{label}] key reuse gave {other:?}"),
    }

    // Unknown orders.
    match api
        .get_order(&bob_ctx, "0190f5a0-0000-7000-8000-000000000000".into())
        .await
    {
        Err(CheckoutError::OrderNotFound { .. }) => {}
        other => panic!("[{label}] unknown order gave {other:?}"),
    }
    let nobody = fresh_user();
    assert!(
        api.list_orders(&as_user(fixture, &nobody).await, nobody)
            .await
            .expect("list")
            .is_empty(),
        "[{label}]"
    );
}
