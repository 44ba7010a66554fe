//! The shipping contract suite: what every [`ShippingApi`] must do. Every shipment it makes is
//! new, so it can run against a shared store.

use cleave_domain::{Address, ProductId};
use cleave_kernel::CallContext;
use cleave_kernel::testing::refusal;

use crate::{
    MAX_ITEMS, MAX_QUANTITY, QUOTE_CURRENCY, QuoteRequest, ShipOrderRequest, ShippingApi,
    ShippingError, ShippingItem, is_tracking_id, quote_for,
};

fn address() -> Address {
    Address::example()
}

fn item(raw: &str, quantity: i64) -> ShippingItem {
    ShippingItem {
        product_id: ProductId::parse(raw).expect("valid product id"),
        quantity,
    }
}

fn quote(items: Vec<ShippingItem>) -> QuoteRequest {
    QuoteRequest {
        address: address(),
        items,
    }
}

fn ship(items: Vec<ShippingItem>) -> ShipOrderRequest {
    ShipOrderRequest {
        address: address(),
        items,
    }
}

fn many_lines(n: usize) -> Vec<ShippingItem> {
    (0..n).map(|i| item(&format!("P{i:04}"), 1)).collect()
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
/// `admin` acts for an admin (shipments are for admins and the checkout module).
pub async fn run(label: &str, api: &dyn ShippingApi, admin: &CallContext) {
    let ctx = admin.clone();
    // Shipments hold addresses: strangers neither make nor read them.
    let anonymous = CallContext::root();
    let refused = api
        .ship_order(&anonymous, ship(vec![item("OLJCESPC7Z", 1)]))
        .await;
    assert_eq!(refusal(&refused), Some(401), "[{label}] {refused:?}");
    let refused = api
        .get_shipment(&anonymous, "XX-00000-0000000".into())
        .await;
    assert_eq!(refusal(&refused), Some(401), "[{label}] {refused:?}");

    // The quote depends on the number of units only, and is in USD.
    let cases = [
        (vec![], 0),
        (vec![item("OLJCESPC7Z", 1)], 1),
        (vec![item("OLJCESPC7Z", 2), item("66VCHSJNUP", 3)], 5),
        (vec![item("6E92ZMYYFZ", MAX_QUANTITY); MAX_ITEMS], 100_000),
    ];
    for (items, count) in cases {
        let got = api.get_quote(&ctx, quote(items)).await;
        match got {
            Ok(q) => {
                assert_eq!(
                    q.cost,
                    quote_for(count),
                    "[{label}] quote for {count} units"
                );
                assert_eq!(q.cost.currency_code, QUOTE_CURRENCY, "[{label}]");
            }
            Err(e) => panic!("[{label}] quote for {count} units failed: {e:?}"),
        }
    }
    assert_ne!(
        quote_for(0),
        quote_for(1),
        "[{label}] shipping something is not free"
    );

    // A bad address is refused, by both operations.
    let no_city = Address {
        city: String::new(),
        ..address()
    };
    let refused = api
        .get_quote(
            &ctx,
            QuoteRequest {
                address: no_city.clone(),
                items: vec![item("OLJCESPC7Z", 1)],
            },
        )
        .await;
    match refused {
        Err(ShippingError::InvalidAddress { detail }) => {
            assert!(
                detail.contains("city"),
                "[{label}] detail names the field: {detail}"
            );
        }
        other => panic!("[{label}] quote to an address without city gave {other:?}"),
    }
    let refused = api
        .ship_order(
            &ctx,
            ShipOrderRequest {
                address: no_city,
                items: vec![item("OLJCESPC7Z", 1)],
            },
        )
        .await;
    assert!(
        matches!(refused, Err(ShippingError::InvalidAddress { .. })),
        "[{label}] shipping to an address without city gave {refused:?}"
    );

    // Quantities outside 1..=MAX_QUANTITY are refused, naming the line.
    for bad in [0, -1, MAX_QUANTITY + 1] {
        let items = vec![item("OLJCESPC7Z", 1), item("L9ECAV7KIM", bad)];
        match api.get_quote(&ctx, quote(items.clone())).await {
            Err(ShippingError::InvalidQuantity {
                product_id,
                quantity,
            }) => {
                assert_eq!(
                    (product_id.as_str(), quantity),
                    ("L9ECAV7KIM", bad),
                    "[{label}]"
                );
            }
            other => panic!("[{label}] quote with quantity {bad} gave {other:?}"),
        }
        let shipped = api.ship_order(&ctx, ship(items)).await;
        assert!(
            matches!(shipped, Err(ShippingError::InvalidQuantity { .. })),
            "[{label}] shipping quantity {bad} gave {shipped:?}"
        );
    }

    // More than MAX_ITEMS lines are refused.
    match api.get_quote(&ctx, quote(many_lines(MAX_ITEMS + 1))).await {
        Err(ShippingError::TooManyItems { max }) => assert_eq!(max, MAX_ITEMS, "[{label}]"),
        other => panic!("[{label}] quote for {} lines gave {other:?}", MAX_ITEMS + 1),
    }
    let shipped = api.ship_order(&ctx, ship(many_lines(MAX_ITEMS + 1))).await;
    assert!(
        matches!(shipped, Err(ShippingError::TooManyItems { .. })),
        "[{label}] shipping {} lines gave {shipped:?}",
        MAX_ITEMS + 1
    );

    // Shipping nothing is refused.
    let shipped = api.ship_order(&ctx, ship(vec![])).await;
    assert_eq!(
        shipped,
        Err(ShippingError::NoItems),
        "[{label}] shipping nothing"
    );

    // ship_order records a shipment under a new tracking id, at the quoted cost.
    let first = api
        .ship_order(
            &ctx,
            ship(vec![item("OLJCESPC7Z", 2), item("66VCHSJNUP", 3)]),
        )
        .await
        .expect("ship order");
    assert!(
        is_tracking_id(&first.tracking_id),
        "[{label}] tracking id {:?} has the form AB-12345-1234567",
        first.tracking_id
    );
    assert_eq!(first.address, address(), "[{label}]");
    assert_eq!(first.item_count, 5, "[{label}] counts units, not lines");
    assert_eq!(first.cost, quote_for(5), "[{label}] costs what was quoted");
    assert!(
        looks_like_rfc3339_utc(&first.created_at),
        "[{label}] created_at {:?} is RFC 3339 in UTC",
        first.created_at
    );
    let second = api
        .ship_order(&ctx, ship(vec![item("OLJCESPC7Z", 1)]))
        .await
        .expect("ship again");
    assert_ne!(
        first.tracking_id, second.tracking_id,
        "[{label}] every shipment has its own tracking id"
    );
    assert_eq!(second.item_count, 1, "[{label}]");

    // get_shipment reads back exactly what ship_order returned.
    for made in [&first, &second] {
        let read = api
            .get_shipment(&ctx, made.tracking_id.clone())
            .await
            .expect("get shipment");
        assert_eq!(&read, made, "[{label}] shipment reads back unchanged");
    }

    // Unknown and malformed tracking ids name no shipment.
    for missing in ["ZZ-00000-0000000", "not-a-tracking-id", "", "../quotes"] {
        match api.get_shipment(&ctx, missing.to_owned()).await {
            Err(ShippingError::ShipmentNotFound { tracking_id }) => {
                assert_eq!(tracking_id, missing, "[{label}]");
            }
            other => panic!("[{label}] tracking id {missing:?} gave {other:?}"),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, checked by shape (the contract crate has no clock).
fn looks_like_rfc3339_utc(raw: &str) -> bool {
    let b = raw.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && raw.ends_with('Z')
}
