//! Contract of the `ads` module: text ads shown next to the products a shopper looks at.
//!
//! - Owns: ads by category (redirect url and text).
//! - Provides: [`AdsApi`]: `get_ads`.
//! - Requires: nothing.
//!
//! As in Boutique's adservice, each context key (a product category) selects the ads of that
//! category; when none matches, [`MAX_ADS`] random ads are served instead.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`AdsClient`] calls them.

use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Most context keys one request may carry.
pub const MAX_CONTEXT_KEYS: usize = 20;
/// Longest context key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 64;
/// How many random ads are served when no context key matches (Boutique serves 2).
pub const MAX_ADS: usize = 2;
/// Most ads served for matching context keys.
pub const MAX_MATCHED_ADS: usize = 5;

/// One text ad.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ad {
    /// Where a click leads, e.g. `/product/66VCHSJNUP`.
    pub redirect_url: String,
    /// The ad's text, e.g. `Tank top for sale. 20% off.`
    pub text: String,
}

/// What to show ads about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdsRequest {
    /// Product categories of the page, e.g. `kitchen`; compared trimmed and ignoring case. At
    /// most [`MAX_CONTEXT_KEYS`], each 1 to [`MAX_KEY_CHARS`] ASCII letters, digits, `-`, `_`
    /// or spaces.
    pub context_keys: Vec<String>,
}

/// Answer of `GET /ads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ads {
    /// The ads to show.
    pub ads: Vec<Ad>,
}

/// Errors of the ads contract.
#[contract_error(module = "ads")]
pub enum AdsError {
    /// More than [`MAX_CONTEXT_KEYS`] context keys.
    #[api(status = 400)]
    #[error("at most {max} context keys may be given")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// A context key is empty, too long or has characters outside the accepted set.
    #[api(status = 400)]
    #[error("invalid context key: {detail}")]
    InvalidContextKey {
        /// What is wrong.
        detail: String,
    },
    /// An ad to save is malformed.
    #[api(status = 400)]
    #[error("invalid ad: {detail}")]
    InvalidAd {
        /// What is wrong.
        detail: String,
    },
    /// No ad has this id.
    #[api(status = 404)]
    #[error("ad {ad_id} not found")]
    AdNotFound {
        /// The id asked for.
        ad_id: String,
    },
}

/// Text ads by product category: the ads contract. Reach the ads module only through this trait.
#[contract(module = "ads", error = AdsError, client = AdsClient, http = http)]
pub trait AdsApi: Send + Sync {
    /// The ads of the categories named by `req.context_keys` (trimmed, ignoring case): every
    /// match once, ordered by category, at most [`MAX_MATCHED_ADS`]. When no key matches, or
    /// none is given, [`MAX_ADS`] distinct ads chosen at random (fewer if fewer exist).
    #[op(GET "/ads", read_only, access(anyone), errors(TooManyKeys, InvalidContextKey))]
    #[rest(
        params(("context_keys" = Option<String>, Query, description = "Comma-separated product categories (at most 20, each 1 to 64 ASCII letters, digits, `-`, `_` or spaces); empty or absent means none")),
        responses((status = 200, description = "The ads to show", body = Ads))
    )]
    async fn get_ads(&self, ctx: &CallContext, req: AdsRequest) -> Result<Ads, AdsError>;

    /// Creates or replaces the ad `ad_id` (admins only).
    #[op(PUT "/ads/{ad_id}", idempotent, access(admin), errors(InvalidAd))]
    #[rest(
        params(("ad_id" = String, Path, description = "The ad's id, e.g. `tank-top`")),
        request_body = AdDefinition,
        responses((status = 200, description = "The ad as saved", body = AdDefinition))
    )]
    async fn put_ad(
        &self,
        ctx: &CallContext,
        ad_id: String,
        ad: AdDefinition,
    ) -> Result<AdDefinition, AdsError>;

    /// Removes the ad `ad_id` (admins only).
    #[op(DELETE "/ads/{ad_id}", idempotent, access(admin), errors(AdNotFound))]
    #[rest(
        params(("ad_id" = String, Path, description = "The ad's id")),
        responses((status = 204, description = "Removed"))
    )]
    async fn delete_ad(&self, ctx: &CallContext, ad_id: String) -> Result<(), AdsError>;
}

/// An ad as an admin defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdDefinition {
    /// The category it is shown for (a context key), lower case.
    pub category: String,
    /// Where a click leads: a path in the shop, e.g. `/product/66VCHSJNUP`.
    pub redirect_url: String,
    /// The ad's text, 1 to 200 characters.
    pub text: String,
}

/// Published when an ad was saved or removed (through the ads module's outbox, with the
/// change): every ads replica, in whatever process, reads its ads again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdChanged {
    /// The ad.
    pub ad_id: String,
}

impl cleave_kernel::events::Topic for AdChanged {
    const TOPIC: &'static str = "ads.ad_changed";
}

/// Checks an ad and its id: id of 1 to 64 lower-case letters, digits or `-`; a category
/// that is a valid context key; a local `redirect_url` (`/...`); text of 1 to 200 characters.
///
/// # Errors
/// [`AdsError::InvalidAd`] naming the field.
pub fn validate_ad(ad_id: &str, ad: &AdDefinition) -> Result<(), AdsError> {
    let bad = |detail: &str| {
        Err(AdsError::InvalidAd {
            detail: detail.to_owned(),
        })
    };
    if ad_id.is_empty()
        || ad_id.len() > 64
        || !ad_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("an ad id is 1 to 64 lower-case letters, digits or '-'");
    }
    if validate_context_keys(std::slice::from_ref(&ad.category)).is_err() {
        return bad("category must be a valid context key");
    }
    if !ad.redirect_url.starts_with('/')
        || ad.redirect_url.starts_with("//")
        || ad.redirect_url.len() > 500
        || ad
            .redirect_url
            .chars()
            .any(|c| c.is_whitespace() || c == '\\')
    {
        return bad("redirect_url must be a path in the shop, like /product/66VCHSJNUP");
    }
    let n = ad.text.trim().chars().count();
    if n == 0 || n > 200 {
        return bad("text must be 1 to 200 characters");
    }
    Ok(())
}

/// Checks the context keys of a request; shared by every implementation so they answer alike.
///
/// # Errors
/// [`AdsError::TooManyKeys`] for more than [`MAX_CONTEXT_KEYS`] keys;
/// [`AdsError::InvalidContextKey`] for a key that is blank, longer than [`MAX_KEY_CHARS`]
/// characters, or holds a character other than an ASCII letter, digit, `-`, `_` or space.
pub fn validate_context_keys(keys: &[String]) -> Result<(), AdsError> {
    if keys.len() > MAX_CONTEXT_KEYS {
        return Err(AdsError::TooManyKeys {
            max: MAX_CONTEXT_KEYS,
        });
    }
    for (i, key) in keys.iter().enumerate() {
        let invalid = |detail: String| AdsError::InvalidContextKey { detail };
        if key.trim().is_empty() {
            return Err(invalid(format!("context key {i} is empty")));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(invalid(format!(
                "context key {i} is longer than {MAX_KEY_CHARS} characters"
            )));
        }
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ')))
        {
            return Err(invalid(format!(
                "context key {i} contains {bad:?}; only ASCII letters, digits, '-', '_' and \
                 spaces are allowed"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl AdsApi for AdsClient {
    async fn get_ads(&self, ctx: &CallContext, req: AdsRequest) -> Result<Ads, AdsError> {
        // Validated here too: a key holding ',' would otherwise be split in two on the wire,
        // and an empty key would vanish instead of being refused as it is in process.
        validate_context_keys(&req.context_keys)?;
        self.remote
            .op(&ops::GET_ADS, ctx)
            .query("context_keys", &req.context_keys.join(","))
            .fetch()
            .await
    }

    async fn put_ad(
        &self,
        ctx: &CallContext,
        ad_id: String,
        ad: AdDefinition,
    ) -> Result<AdDefinition, AdsError> {
        validate_ad(&ad_id, &ad)?;
        self.remote
            .op(&ops::PUT_AD, ctx)
            .params(&[&ad_id])
            .json(&ad)
            .fetch()
            .await
    }

    async fn delete_ad(&self, ctx: &CallContext, ad_id: String) -> Result<(), AdsError> {
        self.remote
            .op(&ops::DELETE_AD, ctx)
            .params(&[&ad_id])
            .send()
            .await
    }
}
