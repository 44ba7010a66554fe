//! The payment contract suite: what every [`PaymentApi`] must do. Makes its own charges, so it
//! can run against a shared store. Card expiry is checked against the current UTC month.

use cleave_domain::{CreditCard, Money};
use cleave_kernel::{ApiError, CallContext};

use crate::{
    CardBrand, Charge, ChargeRequest, ChargeStatus, PaymentApi, PaymentError, current_year_month,
};

const VISA: &str = "4111111111111111";
const MASTERCARD: &str = "5555555555554444";
const MASTERCARD_2_SERIES: &str = "2223003122003222";

fn usd(units: i64, nanos: i32) -> Money {
    Money {
        currency_code: "USD".into(),
        units,
        nanos,
    }
}

fn card(number: &str, cvv: &str, expiration_year: i32, expiration_month: u32) -> CreditCard {
    CreditCard {
        number: number.into(),
        cvv: cvv.into(),
        expiration_year,
        expiration_month,
    }
}

fn request(amount: Money, card: CreditCard) -> ChargeRequest {
    ChargeRequest {
        amount,
        card,
        reference: None,
    }
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
/// Refunds are made with `refunder`: a context an admin or a module of the deployment calls
/// with (over HTTP the server refuses anonymous refunds).
pub async fn run(label: &str, api: &dyn PaymentApi, refunder: &CallContext) {
    let ctx = refunder.clone();
    let (year, month) = current_year_month();
    let later = year + 3;

    // Valid VISA and MasterCard numbers are charged; the charge keeps brand and last four.
    let mut ids = Vec::new();
    for (number, brand, last4) in [
        (VISA, CardBrand::Visa, "1111"),
        ("4111 1111-1111 1111", CardBrand::Visa, "1111"),
        (MASTERCARD, CardBrand::MasterCard, "4444"),
        (MASTERCARD_2_SERIES, CardBrand::MasterCard, "3222"),
    ] {
        let amount = usd(18, 990_000_000);
        let charge = api
            .charge(&ctx, request(amount.clone(), card(number, "123", later, 1)))
            .await
            .unwrap_or_else(|e| panic!("[{label}] charge {brand:?} ending {last4}: {e}"));
        assert_eq!(charge.card_brand, brand, "[{label}] {last4}");
        assert_eq!(charge.card_last4, last4, "[{label}]");
        assert_eq!(charge.status, ChargeStatus::Charged, "[{label}]");
        assert_eq!(charge.amount, amount, "[{label}]");
        assert_eq!(charge.refunded_at, None, "[{label}]");
        assert!(
            !charge.transaction_id.is_empty(),
            "[{label}] a transaction id"
        );
        assert!(
            charge.created_at.contains('T'),
            "[{label}] created_at is RFC 3339: {}",
            charge.created_at
        );
        let read = api
            .get_charge(&ctx, charge.transaction_id.clone())
            .await
            .unwrap_or_else(|e| panic!("[{label}] get_charge: {e}"));
        assert_eq!(read, charge, "[{label}] get_charge returns the charge");
        ids.push(charge.transaction_id);
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "[{label}] transaction ids differ"
    );

    // Any well-formed currency and any positive amount, however small.
    let yen = Money {
        currency_code: "JPY".into(),
        units: 0,
        nanos: 1,
    };
    let charge = api
        .charge(&ctx, request(yen.clone(), card(VISA, "123", later, 12)))
        .await
        .unwrap_or_else(|e| panic!("[{label}] charge 1 nano of JPY: {e}"));
    assert_eq!(charge.amount, yen, "[{label}]");

    // Cards that must be refused, and how.
    let refused = [
        (
            "Luhn failure",
            card("4111111111111112", "123", later, 1),
            "payment.invalid_card",
        ),
        (
            "letters in the number",
            card("4111a11111111111", "123", later, 1),
            "payment.invalid_card",
        ),
        (
            "too short",
            card("411111111111", "123", later, 1),
            "payment.invalid_card",
        ),
        (
            "American Express",
            card("378282246310005", "1234", later, 1),
            "payment.unsupported_card",
        ),
        (
            "month 13",
            card(VISA, "123", later, 13),
            "payment.invalid_card",
        ),
        (
            "month 0",
            card(VISA, "123", later, 0),
            "payment.invalid_card",
        ),
        (
            "2-digit cvv",
            card(VISA, "12", later, 1),
            "payment.invalid_cvv",
        ),
        (
            "4-digit cvv",
            card(MASTERCARD, "1234", later, 1),
            "payment.invalid_cvv",
        ),
        (
            "expired last year",
            card(VISA, "123", year - 1, month),
            "payment.card_expired",
        ),
    ];
    for (case, refused_card, code) in refused {
        let number = refused_card.number.clone();
        let err = match api.charge(&ctx, request(usd(5, 0), refused_card)).await {
            Err(err) => err,
            Ok(charge) => panic!("[{label}] {case} must be refused, got {charge:?}"),
        };
        assert_eq!(err.code(), code, "[{label}] {case}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&number),
            "[{label}] {case}: the error shows the card number: {shown}"
        );
    }
    match api
        .charge(
            &ctx,
            request(usd(5, 0), card("378282246310005", "123", later, 1)),
        )
        .await
    {
        Err(PaymentError::UnsupportedCard { brand }) => assert_eq!(brand, "amex", "[{label}]"),
        other => panic!("[{label}] American Express gave {other:?}"),
    }
    match api
        .charge(&ctx, request(usd(5, 0), card(VISA, "123", year - 1, month)))
        .await
    {
        Err(PaymentError::CardExpired { year: y, month: m }) => {
            assert_eq!((y, m), (year - 1, month), "[{label}]")
        }
        other => panic!("[{label}] a card expired last year gave {other:?}"),
    }
    let (last_month_year, last_month) = if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    assert!(
        matches!(
            api.charge(
                &ctx,
                request(usd(5, 0), card(VISA, "123", last_month_year, last_month))
            )
            .await,
            Err(PaymentError::CardExpired { .. })
        ),
        "[{label}] a card that expired last month is refused"
    );

    // A card is valid through its expiry month.
    let this_month = api
        .charge(
            &ctx,
            request(usd(5, 0), card(MASTERCARD, "123", year, month)),
        )
        .await
        .unwrap_or_else(|e| panic!("[{label}] a card expiring this month: {e}"));
    assert_eq!(this_month.status, ChargeStatus::Charged, "[{label}]");

    // Amounts must be valid money and more than zero.
    for bad in [
        usd(0, 0),
        usd(-5, 0),
        usd(0, -1),
        usd(1, -500_000_000),
        usd(0, 1_000_000_000),
        Money {
            currency_code: "usd".into(),
            units: 5,
            nanos: 0,
        },
    ] {
        match api
            .charge(&ctx, request(bad.clone(), card(VISA, "123", later, 1)))
            .await
        {
            Err(PaymentError::InvalidAmount { .. }) => {}
            other => panic!("[{label}] amount {bad:?} gave {other:?}"),
        }
    }

    // Refunds: once, then idempotently; the charge reads as refunded.
    let charge = api
        .charge(&ctx, request(usd(42, 0), card(VISA, "321", later, 6)))
        .await
        .unwrap_or_else(|e| panic!("[{label}] charge to refund: {e}"));
    let refunded = api
        .refund(refunder, charge.transaction_id.clone())
        .await
        .unwrap_or_else(|e| panic!("[{label}] refund: {e}"));
    assert_eq!(refunded.status, ChargeStatus::Refunded, "[{label}]");
    assert!(refunded.refunded_at.is_some(), "[{label}] refunded_at set");
    assert_eq!(
        Charge {
            status: ChargeStatus::Charged,
            refunded_at: None,
            ..refunded.clone()
        },
        charge,
        "[{label}] a refund changes only status and refunded_at"
    );
    let again = api
        .refund(refunder, charge.transaction_id.clone())
        .await
        .unwrap_or_else(|e| panic!("[{label}] refund again: {e}"));
    assert_eq!(again, refunded, "[{label}] refunding twice changes nothing");
    assert_eq!(
        api.get_charge(&ctx, charge.transaction_id.clone())
            .await
            .unwrap_or_else(|e| panic!("[{label}] get refunded: {e}")),
        refunded,
        "[{label}]"
    );
    // Refunding one charge leaves the others alone.
    let other = api
        .get_charge(&ctx, this_month.transaction_id.clone())
        .await
        .unwrap_or_else(|e| panic!("[{label}] get other: {e}"));
    assert_eq!(other.status, ChargeStatus::Charged, "[{label}]");

    // Unknown transaction ids.
    let unknown = format!("unknown-{}", CallContext::root().request_id());
    for result in [
        api.refund(refunder, unknown.clone()).await,
        api.get_charge(&ctx, unknown.clone()).await,
    ] {
        match result {
            Err(PaymentError::TransactionNotFound { transaction_id }) => {
                assert_eq!(transaction_id, unknown, "[{label}]");
            }
            other => panic!("[{label}] unknown transaction gave {other:?}"),
        }
    }

    // A reference makes a charge idempotent and findable.
    let reference = format!("order-{}", CallContext::root().request_id());
    let mut with_ref = request(usd(10, 0), card(VISA, "123", later, 1));
    with_ref.reference = Some(reference.clone());
    let first = api
        .charge(&ctx, with_ref.clone())
        .await
        .expect("charge with reference");
    assert_eq!(
        first.reference.as_deref(),
        Some(reference.as_str()),
        "[{label}]"
    );
    let second = api.charge(&ctx, with_ref).await.expect("charge again");
    assert_eq!(second, first, "[{label}] the same reference charges once");
    assert_eq!(
        api.find_charge(&ctx, reference.clone())
            .await
            .expect("find"),
        first,
        "[{label}]"
    );
    match api.find_charge(&ctx, format!("{reference}-none")).await {
        Err(PaymentError::TransactionNotFound { .. }) => {}
        other => panic!("[{label}] unknown reference gave {other:?}"),
    }
    match api.find_charge(&ctx, "bad ref/..".into()).await {
        Err(PaymentError::InvalidReference) => {}
        other => panic!("[{label}] malformed reference gave {other:?}"),
    }
    let mut bad_ref = request(usd(10, 0), card(VISA, "123", later, 1));
    bad_ref.reference = Some(String::new());
    assert!(
        matches!(
            api.charge(&ctx, bad_ref).await,
            Err(PaymentError::InvalidReference)
        ),
        "[{label}] an empty reference is refused"
    );
}
