//! Contract of the `identity` module: users, credentials, tokens and signing keys.
//!
//! - Owns: users (email, Argon2id password hash, roles), refresh tokens (stored hashed, in
//!   rotation families), signing keys (Ed25519).
//! - Provides: [`IdentityApi`]: `register`, `login`, `refresh`, `logout`, `whoami`, `jwks`,
//!   `user_active`, `delete_user`.
//! - Requires: nothing.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`IdentityClient`] calls them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cleave_kernel::auth::{Jwks, KeySource, UserDirectory};
use cleave_kernel::context::Principal;
use cleave_kernel::events::{Event, EventError, Subscriber, Topic};
use cleave_kernel::{ApiError, CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

pub mod http;

/// Shortest accepted password (OWASP: at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password (bounds the hashing work one request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A secret string (password, token): serialized as is, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Body of register and login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    /// The e-mail address (compared case-insensitively).
    pub email: String,
    /// The password.
    pub password: Secret,
}

/// What registration answers, whether or not the address already had an account: the
/// normalised address to sign in with. Whether it was free is not told (an address is not
/// something strangers may test for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registration {
    /// The e-mail address, trimmed and lower-cased.
    pub email: String,
}

/// The most common passwords (one a line, lower case), refused at registration: a guesser
/// tries these first.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// A user as others may see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// The user id (a UUID): the `sub` of their tokens and the id their cart and orders use.
    pub user_id: String,
    /// Their e-mail address, lower-cased.
    pub email: String,
    /// Their roles (`shopper`, `admin`).
    pub roles: Vec<String>,
    /// When they registered (RFC 3339, UTC).
    pub created_at: String,
}

/// What login and refresh answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// A signed JWT (`typ: at+jwt`) for `Authorization: Bearer`.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// An opaque token for one refresh; a new one comes with each refresh.
    pub refresh_token: Secret,
}

/// What `POST /guests` answers: an access token for a guest, a subject of its own
/// (`guest-<uuid>`) with the `guest` role. It owns the guest's cart and orders; it cannot be
/// refreshed (ask for a new guest, or sign up and sign in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuestToken {
    /// A signed JWT (`typ: at+jwt`) for `Authorization: Bearer`.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The guest's user id (`guest-<uuid>`): use it where an operation names the user.
    pub user_id: String,
}

/// The role of guest tokens.
pub const GUEST_ROLE: &str = "guest";

/// The prefix of guests' user ids (`guest-<uuid>`); no registered user's id has it.
pub const GUEST_PREFIX: &str = "guest-";

/// Body of refresh and logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: Secret,
}

/// Whether a user exists and may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserStatus {
    /// True for a registered user who is not deleted.
    pub active: bool,
    /// True for a user who was deleted: tokens naming them are refused. (Subjects that were
    /// never users, such as operator-issued tokens for a session, are neither.)
    pub deleted: bool,
}

/// Errors of the identity contract.
#[contract_error(module = "identity")]
pub enum IdentityError {
    /// The e-mail address is malformed.
    #[api(status = 400)]
    #[error("invalid email: {detail}")]
    InvalidEmail {
        /// What is wrong.
        detail: String,
    },
    /// The password is too short or too long.
    #[api(status = 400)]
    #[error("a password is {min} to {max} characters long")]
    InvalidPassword {
        /// Shortest.
        min: usize,
        /// Longest.
        max: usize,
    },
    /// Someone registered with this address already (operators' `cleave user create` only:
    /// registration does not tell).
    #[api(status = 409)]
    #[error("this email address is already registered")]
    EmailTaken,
    /// The password is one of the most common ones, which guessers try first.
    #[api(status = 400)]
    #[error("this password is among the most common ones; choose another")]
    CommonPassword,
    /// Wrong e-mail or password (which one is not said).
    #[api(status = 401)]
    #[error("wrong email or password")]
    InvalidCredentials,
    /// The refresh token is unknown, expired or revoked.
    #[api(status = 401)]
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    /// A refresh token was used twice: the whole family is revoked (RFC 9700 §4.14.2).
    #[api(status = 401)]
    #[error("the refresh token was already used; every token of its session is revoked")]
    RefreshTokenReused,
    /// Too many attempts for this account; wait before trying again.
    #[api(status = 429)]
    #[error("too many attempts for this account; retry in {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds to wait (also in `Retry-After`).
        retry_after_secs: u64,
    },
    /// No such user.
    #[api(status = 404)]
    #[error("user {user_id} not found")]
    UserNotFound {
        /// The id asked for.
        user_id: String,
    },
}

/// Normalises and checks an e-mail address: trimmed, lower-cased, one `@`, a dot in the
/// domain, no spaces, at most 254 characters.
///
/// # Errors
/// [`IdentityError::InvalidEmail`].
pub fn normalize_email(raw: &str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    match cleave_domain::validate_email(&email) {
        Ok(()) => Ok(email),
        Err(e) => Err(IdentityError::InvalidEmail { detail: e.0 }),
    }
}

/// Checks a password's length, and that it is not one of the most common passwords (ignoring
/// case).
///
/// # Errors
/// [`IdentityError::InvalidPassword`], [`IdentityError::CommonPassword`].
pub fn check_password(password: &Secret) -> Result<(), IdentityError> {
    let n = password.expose().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(IdentityError::InvalidPassword {
            min: MIN_PASSWORD_CHARS,
            max: MAX_PASSWORD_CHARS,
        });
    }
    let lower = password.expose().to_lowercase();
    if COMMON_PASSWORDS.lines().any(|common| common == lower) {
        return Err(IdentityError::CommonPassword);
    }
    Ok(())
}

/// Users, sessions and the keys tokens are signed with: the identity contract. Reach the identity module only through this trait.
#[contract(module = "identity", error = IdentityError, client = IdentityClient, http = http)]
pub trait IdentityApi: Send + Sync {
    /// Creates a shopper account if the address has none; either way the answer is the same
    /// (sign in next).
    #[op(POST "/users", once, access(anyone), errors(InvalidEmail, InvalidPassword, CommonPassword, TooManyAttempts))]
    #[rest(
        request_body = Credentials,
        responses((status = 202, description = "Accepted: the address has an account now (whether it had one already is not told)", body = Registration))
    )]
    async fn register(
        &self,
        ctx: &CallContext,
        req: Credentials,
    ) -> Result<Registration, IdentityError>;

    /// Checks the credentials and starts a session: an access token and a refresh token.
    #[op(POST "/tokens", once, access(anyone), errors(InvalidCredentials, TooManyAttempts))]
    #[rest(
        request_body = Credentials,
        responses((status = 200, description = "The session's tokens", body = TokenPair))
    )]
    async fn login(&self, ctx: &CallContext, req: Credentials) -> Result<TokenPair, IdentityError>;

    /// Exchanges a refresh token for a new pair. The old one is spent; using it again revokes
    /// the session.
    #[op(POST "/tokens/refresh", once, access(anyone), errors(InvalidRefreshToken, RefreshTokenReused))]
    #[rest(
        request_body = RefreshRequest,
        responses((status = 200, description = "New tokens", body = TokenPair))
    )]
    async fn refresh(
        &self,
        ctx: &CallContext,
        refresh_token: Secret,
    ) -> Result<TokenPair, IdentityError>;

    /// A guest token: for API clients that shop without an account (their cart and orders
    /// are the guest's). Limited per client address.
    #[op(POST "/guests", once, access(anyone))]
    #[rest(responses((status = 201, description = "A guest's access token", body = GuestToken)))]
    async fn guest(&self, ctx: &CallContext) -> Result<GuestToken, IdentityError>;

    /// Ends the session of a refresh token (every token of its family). Unknown tokens are
    /// fine (logging out twice is not an error).
    #[op(POST "/tokens/revoke", idempotent, access(anyone))]
    #[rest(
        request_body = RefreshRequest,
        responses((status = 204, description = "Revoked (also for unknown tokens)"))
    )]
    async fn logout(&self, ctx: &CallContext, refresh_token: Secret) -> Result<(), IdentityError>;

    /// The user the call is made for.
    #[op(GET "/me", read_only, access(signed_in), errors(UserNotFound))]
    #[rest(responses((status = 200, description = "The authenticated user", body = User)))]
    async fn whoami(&self, ctx: &CallContext) -> Result<User, IdentityError>;

    /// The public keys tokens are signed with.
    #[op(GET "/jwks", read_only, access(anyone))]
    #[rest(responses((status = 200, description = "The key set", body = Jwks)))]
    async fn jwks(&self, ctx: &CallContext) -> Result<Jwks, IdentityError>;

    /// Whether `user_id` exists and is not deleted: for that user (checking their own token),
    /// admins and the modules of the deployment. Strangers are not told.
    #[op(GET "/users/{user_id}/active", read_only, access(owner(user_id), admin, any_module))]
    #[rest(
        params(("user_id" = String, Path, description = "The user id")),
        responses((status = 200, description = "The user's status", body = UserStatus))
    )]
    async fn user_active(
        &self,
        ctx: &CallContext,
        user_id: String,
    ) -> Result<UserStatus, IdentityError>;

    /// Deletes a user (admins only): their tokens stop working at once.
    #[op(DELETE "/users/{user_id}", idempotent, access(admin), errors(UserNotFound))]
    #[rest(
        params(("user_id" = String, Path, description = "The user id")),
        responses((status = 204, description = "Deleted"))
    )]
    async fn delete_user(&self, ctx: &CallContext, user_id: String) -> Result<(), IdentityError>;
}

/// Any [`IdentityApi`] as the source of the keys a token verifier uses.
pub struct IdentityKeys(pub Arc<dyn IdentityApi>);

#[async_trait]
impl KeySource for IdentityKeys {
    async fn jwks(&self) -> Result<Jwks, String> {
        self.0
            .jwks(&CallContext::current())
            .await
            .map_err(|e| e.to_string())
    }
}

/// Published when a user has been deleted (through identity's outbox, with the deletion):
/// every process that remembers who is active forgets them ([`CachedUsers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeleted {
    /// The deleted user.
    pub user_id: String,
}

impl Topic for UserDeleted {
    const TOPIC: &'static str = "identity.user_deleted";
}

/// How long a process trusts that a user it asked a remote identity about is still active,
/// when it hears of deletions ([`UserDeleted`]): the safety net should it miss one.
pub const ACTIVE_FOR: Duration = Duration::from_secs(30);

/// Most users [`CachedUsers`] remembers in each of its sets (then it starts that set afresh).
const REMEMBERED: usize = 100_000;

/// A user directory that remembers who is active for a while (`remember_for`, e.g.
/// [`ACTIVE_FOR`]) and forgets a user as soon as their [`UserDeleted`] arrives (watch that
/// topic with it): a token check then asks identity once per user and period instead of on
/// every request, and a deleted user's tokens are refused as soon as the event reaches the
/// process. Only where deletions reach it: with identity in the process (which need not
/// remember: asking costs a query), or events over a broker.
pub struct CachedUsers {
    directory: Arc<dyn UserDirectory>,
    remember_for: Duration,
    remembered: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    /// Who was active, and since when that is known.
    active: HashMap<String, Instant>,
    /// Who has been deleted (never active again: ids are not reused).
    deleted: HashSet<String>,
}

impl CachedUsers {
    /// Remembers what `directory` says for `remember_for` (zero: only deletions).
    pub fn new(directory: Arc<dyn UserDirectory>, remember_for: Duration) -> Arc<Self> {
        Arc::new(Self {
            directory,
            remember_for,
            remembered: Mutex::default(),
        })
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl UserDirectory for CachedUsers {
    async fn is_active(&self, principal: &Principal) -> Result<bool, String> {
        let subject = principal.subject.as_str();
        {
            let known = self.remembered();
            if known.deleted.contains(subject) {
                return Ok(false);
            }
            if known
                .active
                .get(subject)
                .is_some_and(|since| since.elapsed() < self.remember_for)
            {
                return Ok(true);
            }
        }
        let active = self.directory.is_active(principal).await?;
        let mut known = self.remembered();
        // A deletion heard while the question was out wins.
        if active && !self.remember_for.is_zero() && !known.deleted.contains(subject) {
            if known.active.len() >= REMEMBERED {
                known.active.clear();
            }
            known.active.insert(subject.to_owned(), Instant::now());
        }
        Ok(active)
    }
}

#[async_trait]
impl Subscriber for CachedUsers {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        let deleted: UserDeleted = event.decode()?;
        let mut known = self.remembered();
        known.active.remove(&deleted.user_id);
        if known.deleted.len() >= REMEMBERED {
            known.deleted.clear();
        }
        known.deleted.insert(deleted.user_id.clone());
        tracing::info!(user_id = %deleted.user_id, "user deleted: their tokens are refused here from now on");
        Ok(())
    }
}

/// Any [`IdentityApi`] as the directory that tells whether a token's user still exists.
pub struct IdentityUsers(pub Arc<dyn IdentityApi>);

#[async_trait]
impl cleave_kernel::auth::UserDirectory for IdentityUsers {
    async fn is_active(&self, principal: &Principal) -> Result<bool, String> {
        // The user asks about themselves: their token goes along (the owner may call).
        let ctx = CallContext::current().with_principal(principal.clone());
        match self.0.user_active(&ctx, principal.subject.clone()).await {
            Ok(status) => Ok(!status.deleted),
            // A remote identity refuses the token of a user it no longer has.
            Err(e) if e.code() == IdentityError::REFUSALS[0] => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[async_trait]
impl IdentityApi for IdentityClient {
    async fn register(
        &self,
        ctx: &CallContext,
        req: Credentials,
    ) -> Result<Registration, IdentityError> {
        self.remote.op(&ops::REGISTER, ctx).json(&req).fetch().await
    }

    async fn login(&self, ctx: &CallContext, req: Credentials) -> Result<TokenPair, IdentityError> {
        self.remote.op(&ops::LOGIN, ctx).json(&req).fetch().await
    }

    async fn refresh(
        &self,
        ctx: &CallContext,
        refresh_token: Secret,
    ) -> Result<TokenPair, IdentityError> {
        self.remote
            .op(&ops::REFRESH, ctx)
            .json(&RefreshRequest { refresh_token })
            .fetch()
            .await
    }

    async fn guest(&self, ctx: &CallContext) -> Result<GuestToken, IdentityError> {
        self.remote.op(&ops::GUEST, ctx).fetch().await
    }

    async fn logout(&self, ctx: &CallContext, refresh_token: Secret) -> Result<(), IdentityError> {
        self.remote
            .op(&ops::LOGOUT, ctx)
            .json(&RefreshRequest { refresh_token })
            .send()
            .await
    }

    async fn whoami(&self, ctx: &CallContext) -> Result<User, IdentityError> {
        self.remote.op(&ops::WHOAMI, ctx).fetch().await
    }

    async fn jwks(&self, ctx: &CallContext) -> Result<Jwks, IdentityError> {
        self.remote.op(&ops::JWKS, ctx).fetch().await
    }

    async fn user_active(
        &self,
        ctx: &CallContext,
        user_id: String,
    ) -> Result<UserStatus, IdentityError> {
        self.remote
            .op(&ops::USER_ACTIVE, ctx)
            .params(&[&user_id])
            .fetch()
            .await
    }

    async fn delete_user(&self, ctx: &CallContext, user_id: String) -> Result<(), IdentityError> {
        self.remote
            .op(&ops::DELETE_USER, ctx)
            .params(&[&user_id])
            .send()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let creds = Credentials {
            email: "a@example.com".into(),
            password: Secret("hunter2hunter2".into()),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert_eq!(
            serde_json::to_value(&creds).expect("json")["password"],
            "hunter2hunter2"
        );
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").expect("ok"),
            "alice@example.com"
        );
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("a@b").is_err());
    }
}
