//! Contract of the `payment` module: charging payment cards, and refunding charges.
//!
//! - Owns: charges (transaction id, amount, card brand and last four digits, status).
//! - Provides: [`PaymentApi`]: `charge`, `refund`, `get_charge`.
//! - Requires: nothing.
//!
//! Only valid (Luhn) VISA and MasterCard numbers that have not expired are accepted
//! ([`validate_card`], shared by every implementation and the contract suite). A card number
//! never leaves a call in full: charges keep the brand and the last four digits, and no error
//! message shows more than those four digits.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`PaymentClient`] calls them.

use std::time::{SystemTime, UNIX_EPOCH};

use cleave_domain::{CreditCard, Money};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Body of `POST /charges`: what to charge to which card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChargeRequest {
    /// The amount, strictly positive, in any well-formed currency.
    pub amount: Money,
    /// The card (its `Debug` form hides the number and the CVV).
    pub card: CreditCard,
    /// The caller's reference for this payment (e.g. an order id): 1 to 64 letters, digits,
    /// `-` or `_`. A second charge with the same reference charges nothing and returns the
    /// first charge, so a caller that lost the answer can retry or look it up
    /// ([`PaymentApi::find_charge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The card networks the shop accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CardBrand {
    /// VISA: numbers starting with 4, 13, 16 or 19 digits long.
    #[serde(rename = "visa")]
    Visa,
    /// MasterCard: 16-digit numbers starting with 51 to 55 or 2221 to 2720.
    #[serde(rename = "mastercard")]
    MasterCard,
}

impl CardBrand {
    /// The brand's wire (and storage) name: `visa` or `mastercard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::MasterCard => "mastercard",
        }
    }
}

/// Where a charge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChargeStatus {
    /// The amount was charged to the card.
    #[serde(rename = "charged")]
    Charged,
    /// The charge was refunded in full.
    #[serde(rename = "refunded")]
    Refunded,
}

impl ChargeStatus {
    /// The status's wire (and storage) name: `charged` or `refunded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "charged",
            Self::Refunded => "refunded",
        }
    }
}

/// One charge, as the payment module keeps it: never with the full card number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charge {
    /// The charge's id, given by the payment module.
    pub transaction_id: String,
    /// The amount charged.
    pub amount: Money,
    /// The card's network.
    pub card_brand: CardBrand,
    /// The last four digits of the card number.
    pub card_last4: String,
    /// Charged or refunded.
    pub status: ChargeStatus,
    /// When the card was charged (RFC 3339, UTC).
    pub created_at: String,
    /// When the charge was refunded (RFC 3339, UTC); `None` while it is not.
    pub refunded_at: Option<String>,
    /// The caller's reference, if the charge was made with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Errors of the payment contract. No variant carries more of a card number than its last
/// four digits.
#[contract_error(module = "payment")]
pub enum PaymentError {
    /// The card number or expiry month is malformed, or the number fails the Luhn check.
    #[api(status = 400)]
    #[error("invalid card: {detail}")]
    InvalidCard {
        /// What is wrong (never the number itself).
        detail: String,
    },
    /// The security code is not 3 digits.
    #[api(status = 400)]
    #[error("the card security code must be 3 digits")]
    InvalidCvv,
    /// A well-formed card of a network the shop does not accept (declined).
    #[api(status = 402)]
    #[error("{brand} cards are not accepted, only VISA and MasterCard")]
    UnsupportedCard {
        /// Best guess of the card's network, e.g. `amex`, or `unknown`.
        brand: String,
    },
    /// The card's expiry month has passed (declined).
    #[api(status = 402)]
    #[error("the card expired at the end of {year}-{month:02}")]
    CardExpired {
        /// Expiry year of the card.
        year: i32,
        /// Expiry month of the card.
        month: u32,
    },
    /// The amount is malformed, zero or negative.
    #[api(status = 400)]
    #[error("invalid amount: {detail}")]
    InvalidAmount {
        /// What is wrong.
        detail: String,
    },
    /// The charge reference is malformed.
    #[api(status = 400)]
    #[error("a charge reference is 1 to 64 letters, digits, '-' or '_'")]
    InvalidReference,
    /// No charge has this transaction id (or reference).
    #[api(status = 404)]
    #[error("no charge has transaction id {transaction_id}")]
    TransactionNotFound {
        /// The id asked for.
        transaction_id: String,
    },
}

/// Card charges and refunds: the payment contract. Reach the payment module only through this trait.
#[contract(module = "payment", error = PaymentError, client = PaymentClient, http = http)]
pub trait PaymentApi: Send + Sync {
    /// Charges `req.amount` to `req.card` and returns the charge, status
    /// [`ChargeStatus::Charged`]. The card is checked with [`validate_card`] against the
    /// current month (UTC) and the amount with [`validate_amount`]; nothing is charged when
    /// either fails.
    #[op(POST "/charges", keyed(req.reference), access(admin, modules(checkout)), errors(InvalidAmount, InvalidCard, UnsupportedCard, InvalidCvv, CardExpired, InvalidReference))]
    #[rest(
        request_body = ChargeRequest,
        responses(
            (status = 201, description = "The card was charged", body = Charge,
                headers(("Location" = String, description = "URL of the charge"))),
        )
    )]
    async fn charge(&self, ctx: &CallContext, req: ChargeRequest) -> Result<Charge, PaymentError>;

    /// Refunds a charge in full and returns it, status [`ChargeStatus::Refunded`]. Idempotent:
    /// refunding a refunded charge returns it unchanged (same `refunded_at`), so a retried or
    /// concurrent refund never refunds twice.
    #[op(POST "/charges/{transaction_id}/refund", idempotent, access(admin, modules(checkout)), errors(TransactionNotFound))]
    #[rest(
        params(("transaction_id" = String, Path, description = "The charge's transaction id")),
        responses((status = 200, description = "The refunded charge", body = Charge))
    )]
    async fn refund(
        &self,
        ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError>;

    /// The charge with this transaction id.
    #[op(GET "/charges/{transaction_id}", read_only, access(admin), errors(TransactionNotFound))]
    #[rest(
        params(("transaction_id" = String, Path, description = "The charge's transaction id")),
        responses((status = 200, description = "The charge", body = Charge))
    )]
    async fn get_charge(
        &self,
        ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError>;

    /// The charge made with `reference`, if any.
    #[op(GET "/charges", read_only, access(admin, modules(checkout)), errors(TransactionNotFound, InvalidReference))]
    #[rest(
        params(("reference" = String, Query, description = "The caller's reference the charge was made with")),
        responses((status = 200, description = "The charge", body = Charge))
    )]
    async fn find_charge(
        &self,
        ctx: &CallContext,
        reference: String,
    ) -> Result<Charge, PaymentError>;
}

/// Checks a charge reference: 1 to 64 ASCII letters, digits, `-` or `_`.
///
/// # Errors
/// [`PaymentError::InvalidReference`].
pub fn validate_reference(reference: &str) -> Result<(), PaymentError> {
    if !reference.is_empty()
        && reference.len() <= 64
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(PaymentError::InvalidReference)
    }
}

/// Checks a card against the shop's rules as of `today_year`-`today_month` (UTC) and returns
/// its brand. The number may contain spaces and dashes; it must be 13 to 19 digits, pass the
/// Luhn check and be a VISA or MasterCard number. The expiry month must be 1 to 12 and not
/// before today's month (a card is valid through its expiry month); the CVV must be 3 digits.
///
/// # Errors
/// In the order checked: [`PaymentError::InvalidCard`] (malformed number, failed Luhn check),
/// [`PaymentError::UnsupportedCard`] (another network), [`PaymentError::InvalidCard`]
/// (expiry month outside 1 to 12), [`PaymentError::InvalidCvv`],
/// [`PaymentError::CardExpired`].
pub fn validate_card(
    card: &CreditCard,
    today_year: i32,
    today_month: u32,
) -> Result<CardBrand, PaymentError> {
    let invalid = |detail: &str| PaymentError::InvalidCard {
        detail: detail.to_owned(),
    };
    let digits = card
        .digits()
        .ok_or_else(|| invalid("the card number may hold only digits, spaces and dashes"))?;
    if !(13..=19).contains(&digits.len()) {
        return Err(invalid("the card number must be 13 to 19 digits long"));
    }
    if !luhn_valid(&digits) {
        return Err(invalid(
            "the card number is mistyped (its check digit is wrong)",
        ));
    }
    let brand = brand_of(&digits).map_err(|guess| PaymentError::UnsupportedCard {
        brand: guess.to_owned(),
    })?;
    let (year, month) = (card.expiration_year, card.expiration_month);
    if !(1..=12).contains(&month) {
        return Err(PaymentError::InvalidCard {
            detail: format!("expiration month {month} is not between 1 and 12"),
        });
    }
    if card.cvv.len() != 3 || !card.cvv.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PaymentError::InvalidCvv);
    }
    if (year, month) < (today_year, today_month) {
        return Err(PaymentError::CardExpired { year, month });
    }
    Ok(brand)
}

/// Checks an amount to charge: a well-formed [`Money`] that is strictly positive.
///
/// # Errors
/// [`PaymentError::InvalidAmount`] naming what is wrong.
pub fn validate_amount(amount: &Money) -> Result<(), PaymentError> {
    amount.validate().map_err(|e| PaymentError::InvalidAmount {
        detail: e.to_string(),
    })?;
    // Valid money has units and nanos of one sign, so either being positive makes it so.
    if amount.units > 0 || amount.nanos > 0 {
        Ok(())
    } else {
        Err(PaymentError::InvalidAmount {
            detail: format!("the amount must be more than zero, got {amount}"),
        })
    }
}

/// The current year and month in UTC, from the system clock: what card expiry is checked
/// against.
pub fn current_year_month() -> (i32, u32) {
    year_month_utc(SystemTime::now())
}

/// The year and month (1 to 12) of `at` in UTC. Times before 1970 count as January 1970.
pub fn year_month_utc(at: SystemTime) -> (i32, u32) {
    let days = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
    civil_year_month(days)
}

/// Year and month of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`, for
/// non-negative days: eras of 400 years, years starting in March).
fn civil_year_month(days_since_epoch: u64) -> (i32, u32) {
    let z = days_since_epoch + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        u32::try_from(month).unwrap_or(1),
    )
}

/// The Luhn (mod 10) check of a string of ASCII digits.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The brand of an accepted card number, or a best guess at the network of another one.
fn brand_of(digits: &str) -> Result<CardBrand, &'static str> {
    let prefix = |n: usize| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let len = digits.len();
    if digits.starts_with('4') && matches!(len, 13 | 16 | 19) {
        return Ok(CardBrand::Visa);
    }
    if len == 16 && ((51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4))) {
        return Ok(CardBrand::MasterCard);
    }
    let guess = match (prefix(2), prefix(3), prefix(4)) {
        (34 | 37, _, _) => "amex",
        (65, _, _) | (_, 644..=649, _) | (_, _, 6011) => "discover",
        (_, _, 3528..=3589) => "jcb",
        (36 | 38, _, _) | (_, 300..=305, _) => "diners",
        (62, _, _) => "unionpay",
        _ => "unknown",
    };
    Err(guess)
}

#[async_trait]
impl PaymentApi for PaymentClient {
    async fn charge(&self, ctx: &CallContext, req: ChargeRequest) -> Result<Charge, PaymentError> {
        self.remote
            .op(&ops::CHARGE, ctx)
            .keyed(req.reference.is_some())
            .json(&req)
            .fetch()
            .await
    }

    async fn refund(
        &self,
        ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError> {
        // The route takes no body; an empty object keeps the request plain JSON.
        self.remote
            .op(&ops::REFUND, ctx)
            .params(&[&transaction_id])
            .json(&serde_json::json!({}))
            .fetch()
            .await
    }

    async fn get_charge(
        &self,
        ctx: &CallContext,
        transaction_id: String,
    ) -> Result<Charge, PaymentError> {
        self.remote
            .op(&ops::GET_CHARGE, ctx)
            .params(&[&transaction_id])
            .fetch()
            .await
    }

    async fn find_charge(
        &self,
        ctx: &CallContext,
        reference: String,
    ) -> Result<Charge, PaymentError> {
        validate_reference(&reference)?;
        self.remote
            .op(&ops::FIND_CHARGE, ctx)
            .query("reference", &reference)
            .fetch()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleave_kernel::{ApiError, Upstream};

    fn card(number: &str, cvv: &str, year: i32, month: u32) -> CreditCard {
        CreditCard {
            number: number.into(),
            cvv: cvv.into(),
            expiration_year: year,
            expiration_month: month,
        }
    }

    fn brand(number: &str) -> Result<CardBrand, PaymentError> {
        validate_card(&card(number, "123", 2030, 6), 2026, 11)
    }

    fn unsupported(brand: &str) -> Result<CardBrand, PaymentError> {
        Err(PaymentError::UnsupportedCard {
            brand: brand.into(),
        })
    }

    #[test]
    fn visa_is_accepted_at_13_16_and_19_digits() {
        for number in ["4222222222222", "4111111111111111", "4000000000000000006"] {
            assert_eq!(brand(number), Ok(CardBrand::Visa), "{number}");
        }
    }

    #[test]
    fn visa_of_another_length_is_not_accepted() {
        assert_eq!(brand("400000000000006"), unsupported("unknown"));
    }

    #[test]
    fn mastercard_is_accepted_in_both_ranges() {
        for number in [
            "5105105105105100",
            "5555555555554444",
            "2221000000000009",
            "2223003122003222",
            "2720000000000005",
        ] {
            assert_eq!(brand(number), Ok(CardBrand::MasterCard), "{number}");
        }
    }

    #[test]
    fn numbers_just_outside_the_mastercard_ranges_are_not_accepted() {
        for number in [
            "2220000000000000",
            "2721000000000004",
            "5000000000000009",
            "5600000000000003",
            "510000000000003",
        ] {
            assert!(
                matches!(brand(number), Err(PaymentError::UnsupportedCard { .. })),
                "{number}"
            );
        }
    }

    #[test]
    fn other_networks_are_named_when_refused() {
        assert_eq!(brand("378282246310005"), unsupported("amex"));
        assert_eq!(brand("6011111111111117"), unsupported("discover"));
        assert_eq!(brand("3530111333300000"), unsupported("jcb"));
        assert_eq!(brand("30569309025904"), unsupported("diners"));
        assert_eq!(brand("6200000000000005"), unsupported("unionpay"));
    }

    #[test]
    fn spaces_and_dashes_in_the_number_are_ignored() {
        assert_eq!(brand("4111 1111 1111 1111"), Ok(CardBrand::Visa));
        assert_eq!(brand("5555-5555-5555-4444"), Ok(CardBrand::MasterCard));
    }

    #[test]
    fn malformed_numbers_are_invalid_and_never_echoed() {
        for number in [
            "4111111111111112",
            "4111x11111111111",
            "400000000002",
            "40000000000000000002",
            "",
        ] {
            match brand(number) {
                Err(err @ PaymentError::InvalidCard { .. }) => {
                    let shown = format!("{err} {err:?}");
                    assert!(
                        number.len() < 4 || !shown.contains(number),
                        "{number}: {shown}"
                    );
                }
                other => panic!("{number} gave {other:?}"),
            }
        }
    }

    #[test]
    fn expiry_month_must_be_1_to_12() {
        for month in [0, 13] {
            assert!(
                matches!(
                    validate_card(&card("4111111111111111", "123", 2030, month), 2026, 11),
                    Err(PaymentError::InvalidCard { .. })
                ),
                "{month}"
            );
        }
    }

    #[test]
    fn cvv_must_be_exactly_3_digits() {
        for cvv in ["12", "1234", "12a", ""] {
            assert_eq!(
                validate_card(&card("4111111111111111", cvv, 2030, 1), 2026, 11),
                Err(PaymentError::InvalidCvv),
                "{cvv:?}"
            );
        }
    }

    #[test]
    fn a_card_is_valid_through_its_expiry_month() {
        let visa = "4111111111111111";
        assert!(validate_card(&card(visa, "123", 2026, 11), 2026, 11).is_ok());
        assert!(validate_card(&card(visa, "123", 2027, 1), 2026, 12).is_ok());
        assert_eq!(
            validate_card(&card(visa, "123", 2026, 10), 2026, 11),
            Err(PaymentError::CardExpired {
                year: 2026,
                month: 10
            })
        );
        assert_eq!(
            validate_card(&card(visa, "123", 2025, 12), 2026, 1),
            Err(PaymentError::CardExpired {
                year: 2025,
                month: 12
            })
        );
    }

    #[test]
    fn amounts_must_be_valid_and_positive() {
        let usd = |units, nanos| Money {
            currency_code: "USD".into(),
            units,
            nanos,
        };
        assert!(validate_amount(&usd(0, 1)).is_ok());
        assert!(validate_amount(&usd(18, 990_000_000)).is_ok());
        for bad in [
            usd(0, 0),
            usd(-1, 0),
            usd(0, -1),
            usd(1, -1),
            usd(0, 1_000_000_000),
        ] {
            assert!(
                matches!(
                    validate_amount(&bad),
                    Err(PaymentError::InvalidAmount { .. })
                ),
                "{bad:?}"
            );
        }
        let lower = Money {
            currency_code: "usd".into(),
            units: 1,
            nanos: 0,
        };
        assert!(matches!(
            validate_amount(&lower),
            Err(PaymentError::InvalidAmount { .. })
        ));
    }

    #[test]
    fn days_map_to_their_utc_year_and_month() {
        assert_eq!(civil_year_month(0), (1970, 1));
        assert_eq!(civil_year_month(10_956), (1999, 12));
        assert_eq!(civil_year_month(11_016), (2000, 2));
        assert_eq!(civil_year_month(11_017), (2000, 3));
        assert_eq!(civil_year_month(20_088), (2024, 12));
        assert_eq!(civil_year_month(20_089), (2025, 1));
        assert_eq!(civil_year_month(20_781), (2026, 11));
        let just_before_2025 = UNIX_EPOCH + std::time::Duration::from_secs(20_089 * 86_400 - 1);
        assert_eq!(year_month_utc(just_before_2025), (2024, 12));
    }

    #[test]
    fn declines_are_402_and_mistakes_400() {
        let cases = [
            (
                PaymentError::InvalidCard { detail: "x".into() },
                "payment.invalid_card",
                400,
            ),
            (PaymentError::InvalidCvv, "payment.invalid_cvv", 400),
            (
                PaymentError::UnsupportedCard {
                    brand: "amex".into(),
                },
                "payment.unsupported_card",
                402,
            ),
            (
                PaymentError::CardExpired {
                    year: 2020,
                    month: 1,
                },
                "payment.card_expired",
                402,
            ),
            (
                PaymentError::InvalidAmount { detail: "x".into() },
                "payment.invalid_amount",
                400,
            ),
            (
                PaymentError::TransactionNotFound {
                    transaction_id: "t".into(),
                },
                "payment.transaction_not_found",
                404,
            ),
            (
                PaymentError::unavailable("x".into()),
                "payment.unavailable",
                503,
            ),
            (
                PaymentError::passed(
                    "x".into(),
                    Upstream::kernel("cleave.rate_limited", 429, None, Some(2)).unwrap(),
                ),
                "cleave.rate_limited",
                429,
            ),
            (
                PaymentError::Internal { reason: "x".into() },
                "payment.internal",
                500,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn brands_and_statuses_have_stable_wire_names() {
        for (brand, name) in [
            (CardBrand::Visa, "visa"),
            (CardBrand::MasterCard, "mastercard"),
        ] {
            assert_eq!(brand.as_str(), name);
            assert_eq!(
                serde_json::to_value(brand).expect("encode"),
                serde_json::json!(name)
            );
        }
        for (status, name) in [
            (ChargeStatus::Charged, "charged"),
            (ChargeStatus::Refunded, "refunded"),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(
                serde_json::to_value(status).expect("encode"),
                serde_json::json!(name)
            );
        }
    }
}
