//! The cart contract suite: what every [`CartApi`] must do. Uses fresh user ids, so it can run
//! against a shared store.

use cleave_domain::{ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::testing::{Placed, refusal};

use crate::{CartApi, CartError, CartItem, MAX_LINES, MAX_QUANTITY};

fn pid(raw: &str) -> ProductId {
    ProductId::parse(raw).expect("valid product id")
}

fn fresh_user() -> UserId {
    UserId::parse(format!("contract-{}", CallContext::root().request_id())).expect("user id")
}

/// Runs every case against `p.api`, calling as each cart's owner.
pub async fn run(p: &Placed<dyn CartApi>) {
    let (label, api) = (p.label.as_str(), p.api.as_ref());
    let (alice, bob) = (fresh_user(), fresh_user());
    let ctx = p.as_user(alice.as_ref(), &["shopper"]);

    // A cart is its owner's (and admins'): nobody else reads, fills or empties it.
    let anonymous = CallContext::root();
    let bobs = p.as_user(bob.as_ref(), &["shopper"]);
    let admin = p.as_user("ops", &["admin"]);
    for (who, caller, status) in [("anonymous", &anonymous, 401), ("another user", &bobs, 403)] {
        let read = api.get_cart(caller, alice.clone()).await;
        assert_eq!(
            refusal(&read),
            Some(status),
            "[{label}] {who} reads: {read:?}"
        );
        let add = api
            .add_item(caller, alice.clone(), pid("OLJCESPC7Z"), 1)
            .await;
        assert_eq!(refusal(&add), Some(status), "[{label}] {who} adds: {add:?}");
        let empty = api.empty_cart(caller, alice.clone()).await;
        assert_eq!(
            refusal(&empty),
            Some(status),
            "[{label}] {who} empties: {empty:?}"
        );
    }
    api.get_cart(&admin, alice.clone())
        .await
        .expect("admins read any cart");

    let empty = api
        .get_cart(&ctx, alice.clone())
        .await
        .expect("get empty cart");
    assert_eq!(empty.user_id, alice, "[{label}]");
    assert!(
        empty.items.is_empty(),
        "[{label}] a new user's cart is empty"
    );

    // Adding to an existing line adds up; lines are ordered by product id.
    api.add_item(&ctx, alice.clone(), pid("OLJCESPC7Z"), 2)
        .await
        .expect("add");
    api.add_item(&ctx, alice.clone(), pid("OLJCESPC7Z"), 3)
        .await
        .expect("add again");
    let cart = api
        .add_item(&ctx, alice.clone(), pid("66VCHSJNUP"), 1)
        .await
        .expect("add other");
    let want = vec![
        CartItem {
            product_id: pid("66VCHSJNUP"),
            quantity: 1,
        },
        CartItem {
            product_id: pid("OLJCESPC7Z"),
            quantity: 5,
        },
    ];
    assert_eq!(cart.items, want, "[{label}] add_item returns the cart");
    assert_eq!(
        api.get_cart(&ctx, alice.clone()).await.expect("get").items,
        want,
        "[{label}]"
    );
    assert!(
        api.get_cart(&bobs, bob.clone())
            .await
            .expect("bob")
            .items
            .is_empty(),
        "[{label}]"
    );

    // Bad quantities change nothing.
    for bad in [0, -1, MAX_QUANTITY + 1, i64::MIN] {
        match api
            .add_item(&ctx, alice.clone(), pid("OLJCESPC7Z"), bad)
            .await
        {
            Err(CartError::InvalidQuantity { quantity, max }) => {
                assert_eq!((quantity, max), (bad, MAX_QUANTITY), "[{label}]");
            }
            other => panic!("[{label}] quantity {bad} gave {other:?}"),
        }
    }
    match api
        .add_item(&ctx, alice.clone(), pid("OLJCESPC7Z"), MAX_QUANTITY - 4)
        .await
    {
        Err(CartError::QuantityLimitExceeded { product_id, .. }) => {
            assert_eq!(product_id, "OLJCESPC7Z", "[{label}]");
        }
        other => panic!("[{label}] going over the line limit gave {other:?}"),
    }
    assert_eq!(
        api.get_cart(&ctx, alice.clone()).await.expect("get").items,
        want,
        "[{label}]"
    );

    // Emptying clears the cart and may be repeated.
    api.empty_cart(&ctx, alice.clone()).await.expect("empty");
    api.empty_cart(&ctx, alice.clone())
        .await
        .expect("empty again");
    assert!(
        api.get_cart(&ctx, alice.clone())
            .await
            .expect("get")
            .items
            .is_empty(),
        "[{label}]"
    );

    // A cart holds at most MAX_LINES products.
    for i in 0..MAX_LINES {
        api.add_item(&bobs, bob.clone(), pid(&format!("P{i:04}")), 1)
            .await
            .expect("fill");
    }
    match api.add_item(&bobs, bob.clone(), pid("ONEMORE"), 1).await {
        Err(CartError::TooManyItems { max }) => assert_eq!(max, MAX_LINES, "[{label}]"),
        other => panic!("[{label}] line {} gave {other:?}", MAX_LINES + 1),
    }
    let full = api.get_cart(&bobs, bob.clone()).await.expect("get full");
    assert_eq!(
        full.items.len(),
        MAX_LINES,
        "[{label}] the refused line was not added"
    );
    // Adding to an existing line of a full cart is fine.
    api.add_item(&bobs, bob.clone(), pid("P0000"), 1)
        .await
        .expect("add to existing line");
}
