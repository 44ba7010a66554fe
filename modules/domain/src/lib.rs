//! The shop's domain values, shared by the module contracts: the ids modules use to refer to
//! each other's entities, [`Money`], [`Address`] and [`CreditCard`]. Modules never share
//! tables, only these values. The kernel knows nothing of them: it is plumbing, this is the
//! shop.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why a value could not be built from its raw form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn check_token(kind: &str, raw: &str, max: usize, extra: &[char]) -> Result<(), InvalidValue> {
    if raw.is_empty() || raw.len() > max {
        return Err(InvalidValue(format!(
            "{kind} must be 1 to {max} characters long"
        )));
    }
    if raw.chars().all(|c| c == '.') {
        // "." and ".." would change the meaning of a url path they are put in.
        return Err(InvalidValue(format!("{kind} cannot be made of dots only")));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        return Err(InvalidValue(format!(
            "{kind} contains the character {bad:?}, which is not allowed"
        )));
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a raw id.
            ///
            /// # Errors
            /// [`InvalidValue`] when the id is empty, too long or has characters outside the
            /// allowed set.
            pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidValue> {
                let raw = raw.into();
                check_token($kind, &raw, $max, $extra)?;
                Ok(Self(raw))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(raw: String) -> Result<Self, InvalidValue> {
                Self::parse(raw)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_id!(
    /// A catalog product id, e.g. `OLJCESPC7Z`: 1 to 64 ASCII letters, digits, `-` or `_`.
    ProductId, "product id", 64, &['-', '_']
);
token_id!(
    /// Whose cart or order: a session id or a user id. 1 to 128 ASCII letters, digits or
    /// `-_.:@`.
    UserId, "user id", 128, &['-', '_', '.', ':', '@']
);

/// An ISO 4217 currency code: three upper-case ASCII letters. Whether it is *supported* is the
/// currency module's business.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Validates the form of a code (not whether anyone supports it).
    ///
    /// # Errors
    /// [`InvalidValue`] unless `raw` is three upper-case ASCII letters.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidValue> {
        let raw = raw.into();
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(raw))
        } else {
            Err(InvalidValue(format!(
                "currency code {raw:?} is not three upper-case letters (ISO 4217)"
            )))
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, InvalidValue> {
        Self::parse(raw)
    }
}

impl From<CurrencyCode> for String {
    fn from(c: CurrencyCode) -> String {
        c.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An amount of money, as in Online Boutique: whole `units` plus `nanos` (10^-9 units).
///
/// Invariant (checked by [`Money::validate`]): `nanos` is in `-999_999_999..=999_999_999` and
/// has the same sign as `units` when both are non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// ISO 4217 code of the currency.
    pub currency_code: String,
    /// Whole units of the amount.
    pub units: i64,
    /// Billionths of a unit, same sign as `units`.
    pub nanos: i32,
}

impl Money {
    /// Builds a value, checking the invariant.
    ///
    /// # Errors
    /// [`InvalidValue`] when the code is malformed or `nanos` breaks the invariant.
    pub fn new(currency_code: &str, units: i64, nanos: i32) -> Result<Self, InvalidValue> {
        let m = Self {
            currency_code: currency_code.to_owned(),
            units,
            nanos,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks the currency code's form and the units/nanos invariant.
    ///
    /// # Errors
    /// [`InvalidValue`] naming what is wrong.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        CurrencyCode::parse(self.currency_code.clone())?;
        if !(-999_999_999..=999_999_999).contains(&self.nanos) {
            return Err(InvalidValue(format!(
                "nanos {} is outside -999999999..=999999999",
                self.nanos
            )));
        }
        if (self.units > 0 && self.nanos < 0) || (self.units < 0 && self.nanos > 0) {
            return Err(InvalidValue(format!(
                "units {} and nanos {} have different signs",
                self.units, self.nanos
            )));
        }
        Ok(())
    }

    /// The amount as an exact decimal (currency code aside).
    pub fn to_decimal(&self) -> Decimal {
        Decimal::from(self.units) + Decimal::new(i64::from(self.nanos), 9)
    }

    /// Builds money from a decimal amount, rounding half away from zero to whole nanos.
    ///
    /// # Errors
    /// [`InvalidValue`] when the amount does not fit in `i64` units.
    pub fn from_decimal(currency_code: &str, amount: Decimal) -> Result<Self, InvalidValue> {
        let rounded =
            amount.round_dp_with_strategy(9, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        let units = rounded.trunc();
        let nanos = ((rounded - units) * Decimal::from(NANOS_PER_UNIT)).trunc();
        let units = i64::try_from(units)
            .map_err(|_| InvalidValue(format!("amount {amount} is too large")))?;
        let nanos = i32::try_from(i64::try_from(nanos).unwrap_or(0))
            .map_err(|_| InvalidValue(format!("amount {amount} is not representable")))?;
        Money::new(currency_code, units, nanos)
    }

    /// Adds two amounts of the same currency, carrying nanos into units.
    ///
    /// # Errors
    /// [`InvalidValue`] when the currencies differ or the sum overflows.
    pub fn checked_add(&self, other: &Money) -> Result<Money, InvalidValue> {
        if self.currency_code != other.currency_code {
            return Err(InvalidValue(format!(
                "cannot add {} to {}",
                other.currency_code, self.currency_code
            )));
        }
        let sum = self
            .to_decimal()
            .checked_add(other.to_decimal())
            .ok_or_else(|| InvalidValue("sum overflows".into()))?;
        Money::from_decimal(&self.currency_code, sum)
    }

    /// Multiplies the amount by a whole count, e.g. a price by a quantity.
    ///
    /// # Errors
    /// [`InvalidValue`] when the product overflows.
    pub fn checked_mul(&self, count: i64) -> Result<Money, InvalidValue> {
        let product = self
            .to_decimal()
            .checked_mul(Decimal::from(count))
            .ok_or_else(|| InvalidValue("product overflows".into()))?;
        Money::from_decimal(&self.currency_code, product)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.to_decimal().round_dp(2),
            self.currency_code
        )
    }
}

/// Longest accepted address field, in characters.
pub const MAX_ADDRESS_FIELD: usize = 200;

/// A postal address, as in Online Boutique. Shipping owns the concept; checkout and the
/// storefront pass it along.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    /// Street and number.
    pub street_address: String,
    /// City.
    pub city: String,
    /// State, province or region (may be empty: not every country has one).
    pub state: String,
    /// Country.
    pub country: String,
    /// Postal code.
    pub zip_code: String,
}

impl Address {
    /// Checks that the required fields are present and no field is too long or holds control
    /// characters.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the first bad field.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let fields = [
            ("street_address", &self.street_address, true),
            ("city", &self.city, true),
            ("state", &self.state, false),
            ("country", &self.country, true),
            ("zip_code", &self.zip_code, true),
        ];
        for (name, value, required) in fields {
            if required && value.trim().is_empty() {
                return Err(InvalidValue(format!("address field {name} is required")));
            }
            if value.chars().count() > MAX_ADDRESS_FIELD {
                return Err(InvalidValue(format!(
                    "address field {name} is longer than {MAX_ADDRESS_FIELD} characters"
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(InvalidValue(format!(
                    "address field {name} contains a control character"
                )));
            }
        }
        Ok(())
    }
}

/// A payment card as the shopper typed it. Its `Debug` form shows only the last four digits
/// and never the CVV, so it can sit in structs that get logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditCard {
    /// The card number (digits; spaces and dashes are tolerated and ignored).
    pub number: String,
    /// The 3 or 4 digit security code.
    pub cvv: String,
    /// Expiry year, four digits.
    pub expiration_year: i32,
    /// Expiry month, 1 to 12.
    pub expiration_month: u32,
}

impl CreditCard {
    /// The number's digits, with spaces and dashes dropped; `None` if anything else is in it.
    pub fn digits(&self) -> Option<String> {
        let mut out = String::with_capacity(self.number.len());
        for c in self.number.chars() {
            match c {
                '0'..='9' => out.push(c),
                ' ' | '-' => {}
                _ => return None,
            }
        }
        Some(out)
    }

    /// The last four digits (fewer if the number is shorter), safe to store and show.
    pub fn last4(&self) -> String {
        let digits = self.digits().unwrap_or_default();
        digits[digits.len().saturating_sub(4)..].to_owned()
    }
}

impl fmt::Debug for CreditCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreditCard")
            .field("number", &format_args!("****{}", self.last4()))
            .field("cvv", &"***")
            .field("expiration_year", &self.expiration_year)
            .field("expiration_month", &self.expiration_month)
            .finish()
    }
}

/// Longest accepted e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Checks that `email` is a plausible e-mail address: one `@`, something on each side, a dot in
/// the domain, no spaces or control characters, at most [`MAX_EMAIL_CHARS`].
///
/// # Errors
/// [`InvalidValue`] saying what is wrong (without naming the field: callers do).
pub fn validate_email(email: &str) -> Result<(), InvalidValue> {
    let bad = |why: &str| Err(InvalidValue(why.to_owned()));
    if email.is_empty() || email.chars().count() > MAX_EMAIL_CHARS {
        return bad(&format!("must be 1 to {MAX_EMAIL_CHARS} characters long"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => bad("is not an address like name@example.com"),
    }
}

/// The product ids of Online Boutique's catalog, which its load generator requests: the seed
/// catalog holds them, and the seed ads point at them.
pub const BOUTIQUE_PRODUCT_IDS: [&str; 9] = [
    "0PUK6V6EV0",
    "1YMWWN1N4O",
    "2ZYFJ3GM2N",
    "66VCHSJNUP",
    "6E92ZMYYFZ",
    "9SIQT8TOJO",
    "L9ECAV7KIM",
    "LS4PSXUNUM",
    "OLJCESPC7Z",
];

impl Address {
    /// Google's headquarters, Online Boutique's default address: what the storefront quotes
    /// shipping for, and what examples and tests ship to.
    pub fn example() -> Self {
        Self {
            street_address: "1600 Amphitheatre Parkway".into(),
            city: "Mountain View".into(),
            state: "CA".into(),
            country: "United States".into(),
            zip_code: "94043".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(units: i64, nanos: i32) -> Money {
        Money {
            currency_code: "USD".into(),
            units,
            nanos,
        }
    }

    #[test]
    fn money_rejects_mixed_signs_and_out_of_range_nanos() {
        assert!(m(1, -1).validate().is_err());
        assert!(m(-1, 1).validate().is_err());
        assert!(m(0, 1_000_000_000).validate().is_err());
        assert!(m(0, -5).validate().is_ok());
        assert!(m(-3, -5).validate().is_ok());
    }

    #[test]
    fn money_addition_carries_nanos_into_units() {
        let sum = m(1, 600_000_000).checked_add(&m(2, 700_000_000)).unwrap();
        assert_eq!(sum, m(4, 300_000_000));
    }

    #[test]
    fn money_addition_of_negative_and_positive_keeps_the_sign_invariant() {
        let sum = m(1, 200_000_000).checked_add(&m(-2, -500_000_000)).unwrap();
        assert_eq!(sum, m(-1, -300_000_000));
        sum.validate().unwrap();
        let sum = m(-1, -999_999_999).checked_add(&m(0, -1)).unwrap();
        assert_eq!(sum, m(-2, 0));
    }

    #[test]
    fn money_multiplication_by_quantity_carries() {
        assert_eq!(
            m(18, 990_000_000).checked_mul(3).unwrap(),
            m(56, 970_000_000)
        );
        assert_eq!(
            m(-0, -500_000_000).checked_mul(3).unwrap(),
            m(-1, -500_000_000)
        );
    }

    #[test]
    fn money_from_decimal_rounds_half_away_from_zero() {
        let d = Decimal::new(12_345_678_905, 10); // 1.2345678905
        assert_eq!(Money::from_decimal("USD", d).unwrap(), m(1, 234_567_891));
        assert_eq!(Money::from_decimal("USD", -d).unwrap(), m(-1, -234_567_891));
    }

    #[test]
    fn money_addition_refuses_different_currencies() {
        let eur = Money {
            currency_code: "EUR".into(),
            units: 1,
            nanos: 0,
        };
        assert!(m(1, 0).checked_add(&eur).is_err());
    }

    #[test]
    fn ids_reject_bad_characters_and_lengths() {
        assert!(ProductId::parse("OLJCESPC7Z").is_ok());
        assert!(ProductId::parse("").is_err());
        assert!(ProductId::parse("a b").is_err());
        assert!(ProductId::parse("x".repeat(65)).is_err());
        assert!(UserId::parse("session:3f2a-77").is_ok());
        assert!(UserId::parse("../etc").is_err());
        assert!(UserId::parse("..").is_err());
        assert!(UserId::parse(".").is_err());
        assert!(UserId::parse("a.b").is_ok());
        assert!(CurrencyCode::parse("usd").is_err());
        assert!(CurrencyCode::parse("USD").is_ok());
    }
}

#[cfg(test)]
mod card_and_address_tests {
    use super::*;

    #[test]
    fn a_card_debug_form_hides_the_number_and_cvv() {
        let card = CreditCard {
            number: "4111-1111-1111-1234".into(),
            cvv: "987".into(),
            expiration_year: 2030,
            expiration_month: 1,
        };
        let shown = format!("{card:?}");
        assert!(shown.contains("****1234"), "{shown}");
        assert!(!shown.contains("4111"), "{shown}");
        assert!(!shown.contains("987"), "{shown}");
        assert_eq!(card.digits().as_deref(), Some("4111111111111234"));
    }

    #[test]
    fn a_card_number_with_letters_has_no_digits() {
        let card = CreditCard {
            number: "4111x".into(),
            cvv: "1".into(),
            expiration_year: 2030,
            expiration_month: 1,
        };
        assert_eq!(card.digits(), None);
    }

    #[test]
    fn an_address_needs_street_city_country_and_zip() {
        let ok = Address {
            state: String::new(),
            ..Address::example()
        };
        assert!(ok.validate().is_ok());
        let missing = Address {
            city: " ".into(),
            ..ok.clone()
        };
        assert!(missing.validate().unwrap_err().0.contains("city"));
        let long = Address {
            zip_code: "9".repeat(MAX_ADDRESS_FIELD + 1),
            ..ok
        };
        assert!(long.validate().unwrap_err().0.contains("zip_code"));
    }

    #[test]
    fn email_addresses_are_checked_for_shape() {
        for ok in ["someone@example.com", "a.b+c@shop.co.uk"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "no-at.example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@example.com",
            "a@.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
