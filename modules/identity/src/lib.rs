//! The `identity` module: users, their sessions and the keys their tokens are signed with.
//!
//! - Owns: tables `identity_users`, `identity_refresh_tokens`, `identity_signing_keys`
//!   (migrations in `cleave-migrations::identity`).
//! - Provides: [`identity_api::IdentityApi`] through [`IdentityModule`], plus operator
//!   commands ([`IdentityModule::create_user`], [`IdentityModule::issue_token`],
//!   [`IdentityModule::rotate_keys`]).
//! - Requires: nothing.
//!
//! Passwords are hashed with Argon2id (m = 19456 KiB, t = 2, p = 1, OWASP's minimum) on a
//! pool of `max_concurrent_hashes` threads of the module's own, so a login flood can take
//! neither every core nor more memory than those threads' working blocks (on tokio's blocking
//! pool each new thread kept its own 19 MiB: 300 failed logins grew the process by ~490 MiB). Access tokens are EdDSA-signed JWTs (`typ: at+jwt`, at most 15 minutes) with `iss`,
//! `aud`, `sub`, `exp`, `iat`, `jti` and `roles`. Refresh tokens are random, stored as SHA-256
//! hashes, single use: each refresh spends the token and issues the next one of the same
//! family; presenting a spent token again revokes the whole family (RFC 9700 §4.14.2).
//! Rotating keys keeps the old public key published until every token it signed has expired.

mod entity;
#[cfg(feature = "test-util")]
pub mod testing;

use cleave_kernel::module;
use cleave_kernel::module::ModuleConfig;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use async_trait::async_trait;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cleave_kernel::CallContext;
use cleave_kernel::auth::{
    AccessClaims, Jwks, MAX_ACCESS_TTL_SECS, MAX_LEEWAY_SECS, PublicJwk, SHOPPER_ROLE,
    sign_access_token,
};
use cleave_kernel::events::{Relay, commit_with, now_ms};
use cleave_kernel::ratelimit::{RateLimiter, retry_after_secs};
use cleave_kernel::{ApiError, Refusal};
use identity_api::{
    Credentials, GUEST_PREFIX, GUEST_ROLE, GuestToken, IdentityApi, IdentityError, Registration,
    Secret, TokenPair, User, UserDeleted, UserStatus, check_password, normalize_email,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use entity::{refresh_token, signing_key, user};

/// Settings of `[modules.identity]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// The `iss` of the tokens issued.
    pub issuer: String,
    /// The `aud` of the tokens issued (every module of the shop accepts it).
    pub audience: String,
    /// Access token lifetime, 60 to 900 seconds.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime.
    pub refresh_ttl_secs: u64,
    /// Most password hashes computed at once (each takes ~19 MiB and a core for tens of ms).
    pub max_concurrent_hashes: usize,
    /// Login attempts per account and minute.
    pub login_attempts_per_minute: u32,
    /// Registration attempts per e-mail address and minute.
    pub registrations_per_minute: u32,
    /// Logins per client address and minute (applied at the edge).
    pub login_per_ip_per_minute: u32,
    /// Registrations per client address and minute (applied at the edge).
    pub register_per_ip_per_minute: u32,
    /// Guest tokens per client address and minute (applied at the edge).
    pub guests_per_ip_per_minute: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "cleave".into(),
            audience: "cleave".into(),
            access_ttl_secs: MAX_ACCESS_TTL_SECS,
            refresh_ttl_secs: 14 * 24 * 3600,
            max_concurrent_hashes: 2,
            login_attempts_per_minute: 5,
            registrations_per_minute: 3,
            login_per_ip_per_minute: 30,
            register_per_ip_per_minute: 10,
            guests_per_ip_per_minute: 30,
        }
    }
}

impl ModuleConfig for IdentityConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(60..=MAX_ACCESS_TTL_SECS).contains(&self.access_ttl_secs) {
            return Err((
                "access_ttl_secs",
                format!("must be between 60 and {MAX_ACCESS_TTL_SECS}"),
            ));
        }
        if self.refresh_ttl_secs < self.access_ttl_secs {
            return Err((
                "refresh_ttl_secs",
                "must be at least access_ttl_secs".into(),
            ));
        }
        for (key, value) in [
            ("login_attempts_per_minute", self.login_attempts_per_minute),
            ("registrations_per_minute", self.registrations_per_minute),
            ("login_per_ip_per_minute", self.login_per_ip_per_minute),
            (
                "register_per_ip_per_minute",
                self.register_per_ip_per_minute,
            ),
            ("guests_per_ip_per_minute", self.guests_per_ip_per_minute),
        ] {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.max_concurrent_hashes == 0 {
            return Err(("max_concurrent_hashes", "must be at least 1".into()));
        }
        for (key, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            if value.trim().is_empty() {
                return Err((key, "must not be empty".into()));
            }
        }
        Ok(())
    }
}

/// What the identity module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct IdentityDeps;

/// The identity module, in process.
#[module(contract = identity_api::IdentityContract, config = IdentityConfig, validates,
    owns = "users, credentials, refresh tokens, signing keys",
    publishes = [<UserDeleted as cleave_kernel::events::Topic>::TOPIC],
    start = IdentityModule::start(start.db()?, start.config(), IdentityDeps, start.relay())
        .await.map_err(|e| start.failed(e)))]
pub struct IdentityModule {
    db: DatabaseConnection,
    config: IdentityConfig,
    hashing: Semaphore,
    hashers: HashPool,
    logins: RateLimiter,
    registrations: RateLimiter,
    /// A hash of a random password, verified against when the e-mail is unknown, so that
    /// "no such user" and "wrong password" take the same time.
    dummy_hash: String,
    /// Delivers [`UserDeleted`] from the outbox.
    relay: Relay,
}

fn storage_error(err: DbErr) -> IdentityError {
    cleave_kernel::db::storage_error(&err)
}

fn internal(reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal {
        reason: reason.to_string(),
    }
}

fn argon2() -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
        None,
    )
    .map_err(internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A fixed pool of threads that compute password hashes. Each thread reuses the memory of its
/// previous hash, so hashing holds at most the pool's size in 19 MiB working blocks however
/// many logins fail (threads made on demand, as tokio's blocking pool makes them, each kept
/// theirs). The pool's threads end when the module is dropped.
struct HashPool {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl HashPool {
    fn new(threads: usize) -> Result<Self, IdentityError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(internal)?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on one of the pool's threads.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(work());
            }))
            .map_err(|_| internal("the password hashing threads have stopped"))?;
        rx.await
            .map_err(|_| internal("a password hashing thread stopped mid-hash"))?
    }
}

thread_local! {
    /// The working memory of this thread's last Argon2 verification, reused by the next.
    static ARGON2_BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` matches the PHC string `phc`, computed in this thread's reused working
/// memory (what `PasswordVerifier::verify_password` does, without allocating 19 MiB each time).
fn verify_in_place(password: &[u8], phc: &str) -> Result<bool, IdentityError> {
    let parsed = PasswordHash::new(phc).map_err(internal)?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(internal)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(internal)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(internal)?;
    let salt = parsed
        .salt
        .ok_or_else(|| internal("the stored hash has no salt"))?;
    let expected = parsed
        .hash
        .ok_or_else(|| internal("the stored hash has no output"))?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    ARGON2_BLOCKS.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..blocks])
            .map_err(internal)
    })?;
    Ok(aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok())
}

fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_token() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| internal("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn roles_of(row: &user::Model) -> Vec<String> {
    row.roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

fn to_user(row: &user::Model) -> User {
    User {
        user_id: row.user_id.clone(),
        email: row.email.clone(),
        roles: roles_of(row),
        created_at: rfc3339(row.created_at_ms),
    }
}

/// Checks a role name: lower-case letters, digits, `_` or `-`, 1 to 32 characters.
/// Whether `role` is a well-formed role name: 1 to 32 of a-z, 0-9, `_` and `-`.
pub fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 32
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl IdentityModule {
    /// The module over its (migrated) database. Creates a signing key if there is none.
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`] when the database cannot be used.
    pub async fn start(
        db: DatabaseConnection,
        config: &IdentityConfig,
        _deps: IdentityDeps,
        relay: Relay,
    ) -> Result<Arc<Self>, IdentityError> {
        let module = Self {
            relay,
            db,
            config: config.clone(),
            hashing: Semaphore::new(config.max_concurrent_hashes),
            hashers: HashPool::new(config.max_concurrent_hashes)?,
            logins: RateLimiter::per_minute(config.login_attempts_per_minute),
            registrations: RateLimiter::per_minute(config.registrations_per_minute),
            dummy_hash: String::new(),
        };
        let dummy = module.hash(&Secret(random_token()?)).await?;
        let module = Self {
            dummy_hash: dummy,
            ..module
        };
        if module.active_key().await?.is_none() {
            module.rotate_keys().await?;
        }
        Ok(Arc::new(module))
    }

    async fn hash(&self, password: &Secret) -> Result<String, IdentityError> {
        let _permit = self.hashing.acquire().await.map_err(internal)?;
        let password = password.clone();
        self.hashers
            .run(move || {
                argon2()?
                    .hash_password(password.expose().as_bytes())
                    .map(|h| h.to_string())
                    .map_err(internal)
            })
            .await
    }

    async fn verify(&self, password: &Secret, hash: &str) -> Result<bool, IdentityError> {
        let _permit = self.hashing.acquire().await.map_err(internal)?;
        let (password, hash) = (password.clone(), hash.to_owned());
        self.hashers
            .run(move || verify_in_place(password.expose().as_bytes(), &hash))
            .await
    }

    /// The newest signing key that is not retired.
    async fn active_key(&self) -> Result<Option<signing_key::Model>, IdentityError> {
        signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAtMs.is_null())
            .order_by_desc(signing_key::Column::CreatedAtMs)
            .one(&self.db)
            .await
            .map_err(storage_error)
    }

    /// Creates a new signing key and retires the others; tokens they signed stay valid (their
    /// public keys stay published) until they expire. Returns the new key id.
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`] when the database cannot be written.
    pub async fn rotate_keys(&self) -> Result<String, IdentityError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| internal("key generation"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(internal)?;
        let kid = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let tx = self.db.begin().await.map_err(storage_error)?;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAtMs, Expr::value(now))
            .filter(signing_key::Column::RetiredAtMs.is_null())
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        signing_key::Entity::insert(signing_key::ActiveModel {
            kid: ActiveValue::Set(kid.clone()),
            private_pkcs8: ActiveValue::Set(STANDARD.encode(pkcs8.as_ref())),
            public_x: ActiveValue::Set(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
            created_at_ms: ActiveValue::Set(now),
            retired_at_ms: ActiveValue::Set(None),
        })
        .exec_without_returning(&tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// Signs an access token for `sub` with `roles`, valid `ttl_secs` (at most 15 minutes).
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`]; [`IdentityError::Internal`] without a signing key.
    pub async fn issue_token(
        &self,
        sub: &str,
        roles: &[String],
        ttl_secs: u64,
    ) -> Result<String, IdentityError> {
        let key = self
            .active_key()
            .await?
            .ok_or_else(|| internal("no signing key"))?;
        let der = STANDARD.decode(&key.private_pkcs8).map_err(internal)?;
        let now = now_ms() / 1000;
        let ttl = i64::try_from(ttl_secs.min(MAX_ACCESS_TTL_SECS)).unwrap_or(60);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: sub.to_owned(),
            exp: now + ttl,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            roles: roles.to_vec(),
        };
        sign_access_token(&claims, &key.kid, &der).map_err(internal)
    }

    /// Creates a user with `roles` (operators: `cleave user create`).
    ///
    /// # Errors
    /// As [`IdentityApi::register`], and [`IdentityError::InvalidEmail`] naming a bad role.
    pub async fn create_user(
        &self,
        email: &str,
        password: &Secret,
        roles: &[String],
    ) -> Result<User, IdentityError> {
        let email = normalize_email(email)?;
        check_password(password)?;
        if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
            return Err(IdentityError::Internal {
                reason: format!("role {bad:?} is not a role name (check it first: valid_role)"),
            });
        }
        let hash = self.hash(password).await?;
        let row = user::Model {
            user_id: uuid::Uuid::now_v7().to_string(),
            email,
            password_hash: hash,
            roles: roles.join(","),
            created_at_ms: now_ms(),
            deleted_at_ms: None,
        };
        let active: user::ActiveModel = row.clone().into();
        match user::Entity::insert(active)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(IdentityError::EmailTaken);
            }
            Err(e) => return Err(storage_error(e)),
        }
        tracing::info!(user_id = %row.user_id, "user created");
        Ok(to_user(&row))
    }

    async fn start_session(
        &self,
        user: &user::Model,
        family_id: Option<String>,
    ) -> Result<TokenPair, IdentityError> {
        let access = self
            .issue_token(&user.user_id, &roles_of(user), self.config.access_ttl_secs)
            .await?;
        let refresh = random_token()?;
        let now = now_ms();
        let ttl_ms =
            i64::try_from(self.config.refresh_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        refresh_token::Entity::insert(refresh_token::ActiveModel {
            token_hash: ActiveValue::Set(sha256_hex(&refresh)),
            family_id: ActiveValue::Set(
                family_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            ),
            user_id: ActiveValue::Set(user.user_id.clone()),
            issued_at_ms: ActiveValue::Set(now),
            expires_at_ms: ActiveValue::Set(now.saturating_add(ttl_ms)),
            used_at_ms: ActiveValue::Set(None),
            revoked_at_ms: ActiveValue::Set(None),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(storage_error)?;
        Ok(TokenPair {
            access_token: Secret(access),
            token_type: "Bearer".into(),
            expires_in: self.config.access_ttl_secs,
            refresh_token: Secret(refresh),
        })
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), IdentityError> {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAtMs, Expr::value(now_ms()))
            .filter(refresh_token::Column::FamilyId.eq(family_id))
            .filter(refresh_token::Column::RevokedAtMs.is_null())
            .exec(&self.db)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn live_user(&self, user_id: &str) -> Result<Option<user::Model>, IdentityError> {
        Ok(user::Entity::find_by_id(user_id.to_owned())
            .one(&self.db)
            .await
            .map_err(storage_error)?
            .filter(|u| u.deleted_at_ms.is_none()))
    }
}

#[async_trait]
impl IdentityApi for IdentityModule {
    async fn register(
        &self,
        _ctx: &CallContext,
        req: Credentials,
    ) -> Result<Registration, IdentityError> {
        let email = normalize_email(&req.email)?;
        self.registrations
            .check(&email)
            .map_err(|wait| IdentityError::TooManyAttempts {
                retry_after_secs: retry_after_secs(wait),
            })?;
        // The password is hashed before the insert finds the address taken, so both answers
        // cost the same: neither the body nor the time tells whether it was.
        match self
            .create_user(&req.email, &req.password, &[SHOPPER_ROLE.to_owned()])
            .await
        {
            Ok(_) => {}
            Err(IdentityError::EmailTaken) => {
                tracing::info!("registration for an address that has an account: nothing changed");
            }
            Err(e) => return Err(e),
        }
        Ok(Registration { email })
    }

    async fn login(
        &self,
        _ctx: &CallContext,
        req: Credentials,
    ) -> Result<TokenPair, IdentityError> {
        let email = normalize_email(&req.email).map_err(|_| IdentityError::InvalidCredentials)?;
        // Per account, before any hashing: guessing one account's password is slow.
        self.logins
            .check(&email)
            .map_err(|wait| IdentityError::TooManyAttempts {
                retry_after_secs: retry_after_secs(wait),
            })?;
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await
            .map_err(storage_error)?
            .filter(|u| u.deleted_at_ms.is_none());
        let hash = found
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let matches = self.verify(&req.password, hash).await?;
        match found {
            Some(user) if matches => {
                tracing::info!(user_id = %user.user_id, "login");
                self.start_session(&user, None).await
            }
            _ => Err(IdentityError::InvalidCredentials),
        }
    }

    async fn refresh(
        &self,
        _ctx: &CallContext,
        refresh_token: Secret,
    ) -> Result<TokenPair, IdentityError> {
        let hash = sha256_hex(refresh_token.expose());
        let now = now_ms();
        // Spend the token atomically: of two concurrent refreshes with it, one wins.
        let spent = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAtMs, Expr::value(now))
            .filter(refresh_token::Column::TokenHash.eq(hash.as_str()))
            .filter(refresh_token::Column::UsedAtMs.is_null())
            .filter(refresh_token::Column::RevokedAtMs.is_null())
            .filter(refresh_token::Column::ExpiresAtMs.gt(now))
            .exec(&self.db)
            .await
            .map_err(storage_error)?;
        let row = refresh_token::Entity::find_by_id(hash)
            .one(&self.db)
            .await
            .map_err(storage_error)?
            .ok_or(IdentityError::InvalidRefreshToken)?;
        if spent.rows_affected == 0 {
            if row.used_at_ms.is_some() && row.revoked_at_ms.is_none() {
                // A spent token presented again: stolen or replayed. End the session.
                self.revoke_family(&row.family_id).await?;
                tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reused; session revoked");
                return Err(IdentityError::RefreshTokenReused);
            }
            return Err(IdentityError::InvalidRefreshToken);
        }
        let user = self
            .live_user(&row.user_id)
            .await?
            .ok_or(IdentityError::InvalidRefreshToken)?;
        self.start_session(&user, Some(row.family_id)).await
    }

    async fn logout(&self, _ctx: &CallContext, refresh_token: Secret) -> Result<(), IdentityError> {
        let row = refresh_token::Entity::find_by_id(sha256_hex(refresh_token.expose()))
            .one(&self.db)
            .await
            .map_err(storage_error)?;
        if let Some(row) = row {
            self.revoke_family(&row.family_id).await?;
        }
        Ok(())
    }

    async fn guest(&self, _ctx: &CallContext) -> Result<GuestToken, IdentityError> {
        let user_id = format!("{GUEST_PREFIX}{}", uuid::Uuid::new_v4());
        let access_token = self
            .issue_token(
                &user_id,
                &[GUEST_ROLE.to_owned()],
                self.config.access_ttl_secs,
            )
            .await?;
        Ok(GuestToken {
            access_token: Secret(access_token),
            token_type: "Bearer".into(),
            expires_in: self.config.access_ttl_secs,
            user_id,
        })
    }

    async fn whoami(&self, ctx: &CallContext) -> Result<User, IdentityError> {
        let principal = ctx.principal().ok_or_else(|| {
            IdentityError::refused(Refusal::Unauthenticated(
                "whoami needs an access token".into(),
            ))
        })?;
        let user = self.live_user(&principal.subject).await?.ok_or_else(|| {
            IdentityError::UserNotFound {
                user_id: principal.subject.clone(),
            }
        })?;
        Ok(to_user(&user))
    }

    async fn jwks(&self, _ctx: &CallContext) -> Result<Jwks, IdentityError> {
        // A retired key signs nothing new but verifies what it signed until that expires.
        let keep_after = now_ms().saturating_sub(
            i64::try_from((self.config.access_ttl_secs + MAX_LEEWAY_SECS) * 1000)
                .unwrap_or(i64::MAX),
        );
        let keys = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAtMs)
            .all(&self.db)
            .await
            .map_err(storage_error)?
            .into_iter()
            .filter(|k| k.retired_at_ms.is_none_or(|at| at > keep_after))
            .map(|k| PublicJwk::ed25519(&k.kid, &k.public_x))
            .collect();
        Ok(Jwks { keys })
    }

    async fn user_active(
        &self,
        _ctx: &CallContext,
        user_id: String,
    ) -> Result<UserStatus, IdentityError> {
        let row = user::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .map_err(storage_error)?;
        Ok(UserStatus {
            active: row.as_ref().is_some_and(|u| u.deleted_at_ms.is_none()),
            deleted: row.is_some_and(|u| u.deleted_at_ms.is_some()),
        })
    }

    async fn delete_user(&self, ctx: &CallContext, user_id: String) -> Result<(), IdentityError> {
        let by = ctx.principal().map_or("a module", |p| p.subject.as_str());
        let now = now_ms();
        // The deletion, its refresh tokens' revocation and the event that tells every process
        // to refuse the user's access tokens: one transaction.
        let tx = self.db.begin().await.map_err(storage_error)?;
        let deleted = user::Entity::update_many()
            .col_expr(user::Column::DeletedAtMs, Expr::value(now))
            .filter(user::Column::UserId.eq(user_id.as_str()))
            .filter(user::Column::DeletedAtMs.is_null())
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        if deleted.rows_affected == 0 {
            return Err(IdentityError::UserNotFound { user_id });
        }
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAtMs, Expr::value(now))
            .filter(refresh_token::Column::UserId.eq(user_id.as_str()))
            .filter(refresh_token::Column::RevokedAtMs.is_null())
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        let event = UserDeleted {
            user_id: user_id.clone(),
        };
        commit_with(tx, ctx, &event, &self.relay)
            .await
            .map_err(internal)?;
        tracing::info!(user_id = %user_id, by = %by, "user deleted");
        Ok(())
    }
}
