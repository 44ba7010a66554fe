//! The currency contract suite: what every [`CurrencyApi`] must do. Assumes the seeded rates.

use cleave_domain::Money;
use cleave_kernel::CallContext;

use crate::{CurrencyApi, CurrencyError};

fn money(code: &str, units: i64, nanos: i32) -> Money {
    Money {
        currency_code: code.into(),
        units,
        nanos,
    }
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
pub async fn run(label: &str, api: &dyn CurrencyApi) {
    let ctx = CallContext::root();

    let codes = api
        .supported_currencies(&ctx)
        .await
        .expect("supported_currencies");
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    for want in ["EUR", "USD", "JPY", "CAD", "GBP", "TRY"] {
        assert!(names.contains(&want), "[{label}] {want} supported");
    }
    assert!(
        codes.len() >= 30,
        "[{label}] about 30 currencies, got {}",
        codes.len()
    );
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "[{label}] sorted");

    // Exact conversions at the reference rates (EUR 1 = USD 1.1305).
    let usd = api
        .convert(&ctx, money("EUR", 1, 0), "USD".into())
        .await
        .expect("EUR->USD");
    assert_eq!(usd, money("USD", 1, 130_500_000), "[{label}] 1 EUR in USD");
    let eur = api
        .convert(&ctx, money("USD", 1, 130_500_000), "EUR".into())
        .await
        .expect("back");
    assert_eq!(eur, money("EUR", 1, 0), "[{label}] 1.1305 USD in EUR");
    let same = api
        .convert(&ctx, money("GBP", 12, 340_000_000), "GBP".into())
        .await
        .expect("id");
    assert_eq!(
        same,
        money("GBP", 12, 340_000_000),
        "[{label}] same currency is identity"
    );

    // Negative amounts keep the sign invariant; carries land in units.
    let neg = api
        .convert(&ctx, money("EUR", -2, -500_000_000), "USD".into())
        .await
        .expect("neg");
    assert_eq!(
        neg,
        money("USD", -2, -826_250_000),
        "[{label}] -2.5 EUR in USD"
    );
    // 18.99 USD -> JPY: 18.99 / 1.1305 * 126.40 = 2123.2516585581...
    let jpy = api
        .convert(&ctx, money("USD", 18, 990_000_000), "JPY".into())
        .await
        .expect("jpy");
    assert_eq!(
        jpy,
        money("JPY", 2123, 251_658_558),
        "[{label}] 18.99 USD in JPY"
    );
    jpy.validate().expect("valid");

    // Bad input.
    for bad in ["XXX", "usd", "", "EURO"] {
        match api.convert(&ctx, money("EUR", 1, 0), bad.into()).await {
            Err(CurrencyError::UnsupportedCurrency { currency_code }) => {
                assert_eq!(currency_code, bad, "[{label}]");
            }
            other => panic!("[{label}] to {bad:?} gave {other:?}"),
        }
    }
    match api.convert(&ctx, money("ABC", 1, 0), "EUR".into()).await {
        Err(CurrencyError::UnsupportedCurrency { .. }) => {}
        other => panic!("[{label}] from ABC gave {other:?}"),
    }
    for bad in [money("EUR", 1, -1), money("EUR", 0, 1_000_000_000)] {
        match api.convert(&ctx, bad.clone(), "USD".into()).await {
            Err(CurrencyError::InvalidMoney { .. }) => {}
            other => panic!("[{label}] {bad:?} gave {other:?}"),
        }
    }
}
