//! Access tokens: what they contain and how every module verifies them.
//!
//! The identity module signs access tokens (JWT, RFC 9068 `typ: at+jwt`) with Ed25519 keys
//! (`alg: EdDSA`) and publishes the public keys as a JWKS with key ids. Any process verifies
//! a token with [`TokenVerifier`] from those public keys alone: no shared secret. Verification
//! follows RFC 8725: the algorithm is pinned (EdDSA only, whatever the header says), the key is
//! chosen by `kid` among the published ones, and `exp`, `iss`, `aud`, `typ`, `sub`, `iat` and
//! `jti` are required and checked, with at most [`MAX_LEEWAY_SECS`] of clock leeway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::context::Principal;

/// The `typ` header of an access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Longest lifetime of an access token.
pub const MAX_ACCESS_TTL_SECS: u64 = 15 * 60;
/// Most clock skew tolerated on `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 30;
pub use crate::context::{ADMIN_ROLE, SHOPPER_ROLE};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id.
    pub jti: String,
    /// Roles granted.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl AccessClaims {
    /// The principal these claims describe.
    pub fn principal(&self) -> Principal {
        Principal {
            subject: self.sub.clone(),
            roles: self.roles.clone(),
            access_token: None,
        }
    }
}

/// Signs `claims` as an access token (`alg: EdDSA`, `typ: at+jwt`, `kid`) with the Ed25519
/// key in `pkcs8_der`: the one place tokens are made.
///
/// # Errors
/// When the key cannot sign.
pub fn sign_access_token(
    claims: &AccessClaims,
    kid: &str,
    pkcs8_der: &[u8],
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYPE.into());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8_der),
    )
}

/// One public signing key, as published in the JWKS (RFC 8037: `kty: OKP`, `crv: Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicJwk {
    /// Key id, named in the `kid` header of the tokens it signs.
    pub kid: String,
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The algorithm the key is for: `EdDSA`.
    pub alg: String,
    /// Use: `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The public key, base64url without padding.
    pub x: String,
}

impl PublicJwk {
    /// An Ed25519 public key (base64url `x`) under `kid`.
    pub fn ed25519(kid: &str, x: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            x: x.to_owned(),
        }
    }
}

/// A JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// The keys tokens may be signed with.
    pub keys: Vec<PublicJwk>,
}

/// Where a verifier gets the published keys (the identity module, local or remote).
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The current JWKS.
    ///
    /// # Errors
    /// Why the keys cannot be had (the identity module is unreachable).
    async fn jwks(&self) -> Result<Jwks, String>;
}

/// The cookie holding a signed-in user's access token in a browser (set by the storefront's
/// sign-in; read by the storefront's pages and the operator page).
pub const TOKEN_COOKIE: &str = "shop_token";

/// Why a request is not authenticated or not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, cleave_macros::ApiError)]
#[api(module = "auth", no_refusals)]
pub enum AuthError {
    /// No valid access token: missing, malformed, badly signed, expired, for another
    /// audience or issuer, or for a user who no longer exists.
    #[api(status = 401)]
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// What is wrong with the token (never the token itself).
        reason: String,
    },
    /// Authenticated, but not allowed to do this.
    #[api(status = 403)]
    #[error("forbidden: {reason}")]
    Forbidden {
        /// What is missing.
        reason: String,
    },
    /// The keys or the user directory cannot be reached.
    #[api(unavailable)]
    #[error("authentication is unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        reason: String,
    },
    /// A bug.
    #[api(internal)]
    #[error("authentication internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        reason: String,
    },
}

fn unauthenticated(reason: &str) -> AuthError {
    AuthError::Unauthenticated {
        reason: reason.to_owned(),
    }
}

/// Verifies access tokens against the published keys.
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway: u64,
    source: Arc<dyn KeySource>,
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    /// Refetch bookkeeping: an unknown `kid` refetches the keys (a rotation happened), but a
    /// kid that was just missed does not refetch again for a second, and there are at most
    /// [`MAX_FETCHES_PER_SEC`] fetches a second whatever the kids: made-up kids cannot turn
    /// requests into a flood on the identity module.
    fetches: Mutex<Fetches>,
    /// Tokens already verified with the current keys, and their claims: each hop of a call
    /// chain relays the end user's token, and a signature need not be checked again in every
    /// process for every call (see [`TokenVerifier::verify`]).
    verified: std::sync::Mutex<Verified>,
}

/// Most tokens a verifier remembers; past it, it forgets them all.
const MAX_VERIFIED: usize = 4096;

/// Tokens verified with one key set.
#[derive(Default)]
struct Verified {
    /// The key set they were verified with (a new one forgets them).
    keys: Option<Arc<HashMap<String, DecodingKey>>>,
    claims: HashMap<Box<str>, AccessClaims>,
}

/// Most JWKS fetches per second by one verifier.
const MAX_FETCHES_PER_SEC: usize = 5;

#[derive(Default)]
struct Fetches {
    recent: Vec<Instant>,
    missed: HashMap<String, Instant>,
}

impl TokenVerifier {
    /// A verifier for tokens of `issuer` meant for `audience`, with `leeway_secs` (capped at
    /// [`MAX_LEEWAY_SECS`]).
    pub fn new(issuer: &str, audience: &str, leeway_secs: u64, source: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: leeway_secs.min(MAX_LEEWAY_SECS),
            source,
            keys: ArcSwap::from_pointee(HashMap::new()),
            fetches: Mutex::new(Fetches::default()),
            verified: std::sync::Mutex::new(Verified::default()),
        }
    }

    /// The claims of `token` if it was verified with `keys`, checked again against the
    /// clock (expiry and not-before, with the leeway); what does not depend on the clock
    /// (signature, algorithm, type, issuer, audience) held when it was verified.
    fn remembered(
        &self,
        token: &str,
        keys: &Arc<HashMap<String, DecodingKey>>,
    ) -> Option<Result<AccessClaims, AuthError>> {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !verified.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            return None;
        }
        let claims = verified.claims.get(token)?;
        let now = crate::events::now_ms() / 1000;
        let leeway = i64::try_from(self.leeway).unwrap_or(0);
        Some(if claims.exp < now - leeway {
            Err(unauthenticated("the token has expired"))
        } else if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            Err(unauthenticated("the token is not valid yet (nbf)"))
        } else {
            Ok(claims.clone())
        })
    }

    /// Remembers that `token`, with `claims`, verified with `keys`.
    fn remember(
        &self,
        token: &str,
        keys: Arc<HashMap<String, DecodingKey>>,
        claims: &AccessClaims,
    ) {
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !verified
            .keys
            .as_ref()
            .is_some_and(|k| Arc::ptr_eq(k, &keys))
        {
            verified.claims.clear();
            verified.keys = Some(keys);
        }
        if verified.claims.len() >= MAX_VERIFIED {
            verified.claims.clear();
        }
        verified.claims.insert(token.into(), claims.clone());
    }

    async fn refresh_keys(&self, kid: &str) -> Result<(), AuthError> {
        let mut fetches = self.fetches.lock().await;
        let second = Duration::from_secs(1);
        fetches.recent.retain(|at| at.elapsed() < second);
        fetches.missed.retain(|_, at| at.elapsed() < second);
        if fetches.missed.contains_key(kid) || fetches.recent.len() >= MAX_FETCHES_PER_SEC {
            return Ok(());
        }
        fetches.recent.push(Instant::now());
        let jwks = self
            .source
            .jwks()
            .await
            .map_err(|reason| AuthError::Unavailable { reason })?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            // Only Ed25519 keys for EdDSA are accepted: the algorithm is pinned per key.
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != "EdDSA" {
                continue;
            }
            if let Ok(key) = DecodingKey::from_ed_components(&jwk.x) {
                keys.insert(jwk.kid, key);
            }
        }
        if !keys.contains_key(kid) {
            fetches.missed.insert(kid.to_owned(), Instant::now());
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Verifies `token` and returns its claims. A token this verifier verified before with
    /// the same keys (at most [`MAX_VERIFIED`] of them) is only checked against the clock
    /// again: its signature stays good until the keys change.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] naming what is wrong; [`AuthError::Unavailable`] when the
    /// keys cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if let Some(known) = self.remembered(token, &self.keys.load_full()) {
            return known;
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthenticated("the token is not a well-formed JWT with a known algorithm")
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(unauthenticated("the token's algorithm is not allowed"));
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
        {
            return Err(unauthenticated("the token is not an access token (typ)"));
        }
        if names_critical_extensions(token) {
            // RFC 7515 §4.1.11: a `crit` parameter names extensions the recipient must
            // understand; this verifier understands none.
            return Err(unauthenticated(
                "the token names critical header extensions (crit) that are not understood",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthenticated("the token names no key (kid)"))?;
        if !self.keys.load().contains_key(&kid) {
            self.refresh_keys(&kid).await?;
        }
        let keys = self.keys.load_full();
        let key = keys
            .get(&kid)
            .ok_or_else(|| unauthenticated("the token is signed with an unknown key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
            unauthenticated(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidAudience => "the token is for another audience",
                ErrorKind::InvalidIssuer => "the token is from another issuer",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                    "the token lacks a required claim or has a malformed one"
                }
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed",
                _ => "the token is invalid",
            })
        })?;
        let now = crate::events::now_ms() / 1000;
        if data.claims.iat > now.saturating_add(i64::try_from(self.leeway).unwrap_or(0)) {
            // RFC 8725 §3.10 and RFC 9068 §4: a token issued in the future was not issued by
            // a clock anyone should trust.
            return Err(unauthenticated("the token was issued in the future (iat)"));
        }
        self.remember(token, keys.clone(), &data.claims);
        Ok(data.claims)
    }
}

/// Whether the JOSE header of `token` has a `crit` parameter.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(head) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|header| header.get("crit").is_some())
}

/// Whether the subject of a valid token may still act (a deleted user's tokens stop working
/// before they expire).
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// False when the subject of `principal` (a token just verified, carried in
    /// `principal.access_token` so that a remote directory sees the user asking about
    /// themselves) is a deleted user.
    ///
    /// # Errors
    /// Why it cannot be told (the directory is unreachable).
    async fn is_active(&self, principal: &Principal) -> Result<bool, String>;
}

/// What the [`crate::http::authenticate`] middleware uses: the verifier and, if there is one,
/// the user directory.
pub struct Authenticator {
    /// Verifies signatures and claims.
    pub verifier: TokenVerifier,
    /// Refuses tokens of deleted users.
    pub users: Option<Arc<dyn UserDirectory>>,
}

impl Authenticator {
    /// The principal of a bearer token.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] for a bad token or a deleted user,
    /// [`AuthError::Unavailable`] when keys or users cannot be checked.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.verifier.verify(token).await?;
        let mut principal = claims.principal();
        principal.access_token = Some(Arc::from(token));
        if let Some(users) = &self.users {
            let active = users
                .is_active(&principal)
                .await
                .map_err(|reason| AuthError::Unavailable { reason })?;
            if !active {
                return Err(unauthenticated("the token's user no longer exists"));
            }
        }
        Ok(principal)
    }
}

/// The token of an `Authorization` value `Bearer <token>` (the scheme in any case), as REST
/// headers and gRPC metadata carry it; `None` for another scheme or an empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks that a principal has `role`.
///
/// # Errors
/// [`AuthError::Unauthenticated`] without a principal, [`AuthError::Forbidden`] without the
/// role.
pub fn require_role(principal: Option<&Principal>, role: &str) -> Result<(), AuthError> {
    let principal = principal.ok_or_else(|| unauthenticated("this needs an access token"))?;
    if principal.has_role(role) {
        Ok(())
    } else {
        Err(AuthError::Forbidden {
            reason: format!("this needs the {role} role"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn a_bearer_token_is_read_in_any_case_of_its_scheme_and_never_empty() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
