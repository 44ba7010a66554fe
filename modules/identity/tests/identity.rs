//! The identity module in process and over HTTP: sessions (register, login, refresh rotation,
//! reuse detection, logout), what is stored, key rotation, and every way a forged or stale
//! access token must be refused by the kernel's verifier.

use std::sync::Arc;

use cleave_kernel::CallContext;
use cleave_kernel::auth::{AccessClaims, AuthError, Authenticator, TokenVerifier};
use cleave_kernel::events::Relay;
use cleave_kernel::http::ServerStack;
use cleave_kernel::module::{Contract, Migrations};
use cleave_kernel::testing::{
    ContractHarness, TestDb, TestGrpcServer, TestServer, at_the_edge, refusal, test_databases,
};
use identity::testing::Forged;
use identity::{IdentityConfig, IdentityDeps, IdentityModule};
use identity_api::{
    Credentials, IdentityApi, IdentityContract, IdentityError, IdentityKeys, IdentityUsers, Secret,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn start(db: &TestDb) -> (Arc<IdentityModule>, DatabaseConnection) {
    // Deletions go through the outbox.
    let conn = ContractHarness::<IdentityModule>::new::<
        Migrations<cleave_migrations::identity::Migrator>,
    >()
    .with_migrations::<Migrations<cleave_migrations::events::Migrator>>()
    .migrated(db)
    .await;
    let module = IdentityModule::start(
        conn.clone(),
        &IdentityConfig::default(),
        IdentityDeps,
        Relay::disabled(),
    )
    .await
    .expect("start identity");
    (module, conn)
}

fn verifier(api: Arc<dyn IdentityApi>) -> TokenVerifier {
    TokenVerifier::new("cleave", "cleave", 30, Arc::new(IdentityKeys(api)))
}

fn creds(email: &str, password: &str) -> Credentials {
    Credentials {
        email: email.into(),
        password: Secret(password.into()),
    }
}

fn fresh_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4())
}

/// What every `IdentityApi` must do; `verifier` checks the tokens it hands out.
async fn sessions(label: &str, api: &dyn IdentityApi, verifier: &TokenVerifier) {
    let ctx = CallContext::root();
    let email = fresh_email();
    let registered = api
        .register(&ctx, creds(&email.to_uppercase(), "correct horse"))
        .await
        .expect("register");
    assert_eq!(registered.email, email, "[{label}] emails are lower-cased");
    // Registering a taken address answers the same and changes nothing: whether an address
    // has an account is not told, and its password stays.
    let again = api
        .register(&ctx, creds(&email, "another password"))
        .await
        .expect("a second registration is accepted");
    assert_eq!(again, registered, "[{label}]");
    match api.login(&ctx, creds(&email, "another password")).await {
        Err(IdentityError::InvalidCredentials) => {}
        other => panic!("[{label}] the second registration's password gave {other:?}"),
    }
    for common in ["password", "12345678", "Password1", "QWERTYUIOP"] {
        match api.register(&ctx, creds(&fresh_email(), common)).await {
            Err(IdentityError::CommonPassword) => {}
            other => panic!("[{label}] the common password {common:?} gave {other:?}"),
        }
    }
    match api.register(&ctx, creds(&fresh_email(), "short")).await {
        Err(IdentityError::InvalidPassword { min, .. }) => assert_eq!(min, 8),
        other => panic!("[{label}] short password gave {other:?}"),
    }
    match api
        .register(&ctx, creds("not-an-email", "long enough"))
        .await
    {
        Err(IdentityError::InvalidEmail { .. }) => {}
        other => panic!("[{label}] bad email gave {other:?}"),
    }

    // Wrong password and unknown user look the same.
    for bad in [
        creds(&email, "wrong password"),
        creds(&fresh_email(), "correct horse"),
    ] {
        match api.login(&ctx, bad).await {
            Err(IdentityError::InvalidCredentials) => {}
            other => panic!("[{label}] bad login gave {other:?}"),
        }
    }
    let pair = api
        .login(&ctx, creds(&email, "correct horse"))
        .await
        .expect("login");
    assert_eq!(pair.token_type, "Bearer");
    assert!(
        pair.expires_in <= 900,
        "[{label}] access tokens live at most 15 minutes"
    );
    let claims = verifier
        .verify(pair.access_token.expose())
        .await
        .expect("the access token verifies");
    assert_eq!(claims.roles, vec!["shopper"]);
    assert!(claims.exp - claims.iat <= 900);

    // whoami answers for the principal the token names (relayed over HTTP as a bearer).
    let mut principal = claims.principal();
    principal.access_token = Some(Arc::from(pair.access_token.expose()));
    let me = api
        .whoami(&ctx.clone().with_principal(principal))
        .await
        .expect("whoami");
    assert_eq!(me.user_id, claims.sub, "[{label}]");
    assert_eq!(me.email, email, "[{label}]");
    assert_eq!(me.roles, vec!["shopper"], "[{label}]");
    let anonymous = api.whoami(&ctx).await;
    assert_eq!(refusal(&anonymous), Some(401), "[{label}] {anonymous:?}");

    // Whether a user exists is told to that user, not to strangers.
    let mut me_ctx = ctx.clone();
    let mut principal = claims.principal();
    principal.access_token = Some(Arc::from(pair.access_token.expose()));
    me_ctx = me_ctx.with_principal(principal);
    assert!(
        api.user_active(&me_ctx, claims.sub.clone())
            .await
            .expect("own status")
            .active,
        "[{label}]"
    );
    let stranger = api.user_active(&ctx, claims.sub.clone()).await;
    assert_eq!(refusal(&stranger), Some(401), "[{label}] {stranger:?}");

    // A guest token is a subject of its own, with the guest role, that verifies.
    let guest = api.guest(&ctx).await.expect("guest");
    assert!(guest.user_id.starts_with("guest-"), "[{label}]");
    let guest_claims = verifier
        .verify(guest.access_token.expose())
        .await
        .expect("the guest token verifies");
    assert_eq!(guest_claims.sub, guest.user_id, "[{label}]");
    assert_eq!(guest_claims.roles, vec!["guest"], "[{label}]");
    let mut guest_principal = guest_claims.principal();
    guest_principal.access_token = Some(Arc::from(guest.access_token.expose()));
    let asked = api
        .user_active(
            &ctx.clone().with_principal(guest_principal),
            claims.sub.clone(),
        )
        .await;
    assert_eq!(
        refusal(&asked),
        Some(403),
        "[{label}] a guest asks about a user: {asked:?}"
    );

    // Refresh rotates; a spent refresh token presented again revokes the whole family.
    let second = api
        .refresh(&ctx, pair.refresh_token.clone())
        .await
        .expect("refresh");
    assert_ne!(
        second.refresh_token, pair.refresh_token,
        "[{label}] rotated"
    );
    verifier
        .verify(second.access_token.expose())
        .await
        .expect("new access token");
    match api.refresh(&ctx, pair.refresh_token.clone()).await {
        Err(IdentityError::RefreshTokenReused) => {}
        other => panic!("[{label}] reuse gave {other:?}"),
    }
    match api.refresh(&ctx, second.refresh_token.clone()).await {
        Err(IdentityError::InvalidRefreshToken) => {}
        other => panic!("[{label}] the family is revoked, yet refresh gave {other:?}"),
    }
    match api.refresh(&ctx, Secret("made-up".into())).await {
        Err(IdentityError::InvalidRefreshToken) => {}
        other => panic!("[{label}] unknown refresh token gave {other:?}"),
    }

    // Logout ends the session; logging out again is fine.
    let third = api
        .login(&ctx, creds(&email, "correct horse"))
        .await
        .expect("login again");
    api.logout(&ctx, third.refresh_token.clone())
        .await
        .expect("logout");
    api.logout(&ctx, third.refresh_token.clone())
        .await
        .expect("logout twice");
    match api.refresh(&ctx, third.refresh_token).await {
        Err(IdentityError::InvalidRefreshToken) => {}
        other => panic!("[{label}] refresh after logout gave {other:?}"),
    }

    let jwks = api.jwks(&ctx).await.expect("jwks");
    assert!(!jwks.keys.is_empty());
    assert!(
        jwks.keys
            .iter()
            .all(|k| k.alg == "EdDSA" && k.crv == "Ed25519")
    );
}

#[tokio::test]
async fn identity_in_process_keeps_sessions_right() {
    for db in test_databases().await {
        let (module, _) = start(&db).await;
        let v = verifier(module.clone());
        let api = at_the_edge::<IdentityContract>(module.clone());
        sessions(&format!("in-process/{}", db.backend), api.as_ref(), &v).await;
    }
}

/// Token checks against `api`'s keys and users, as a process hosting identity has.
fn authenticator(api: &Arc<dyn IdentityApi>) -> Arc<Authenticator> {
    Arc::new(Authenticator {
        verifier: verifier(api.clone()),
        users: Some(Arc::new(IdentityUsers(api.clone()))),
    })
}

#[tokio::test]
async fn identity_over_http_keeps_sessions_right() {
    for db in test_databases().await {
        let (module, _) = start(&db).await;
        let api: Arc<dyn IdentityApi> = module.clone();
        let auth = authenticator(&api);
        let stack = ServerStack {
            authenticator: Some(auth),
            ..ServerStack::default()
        };
        let served = at_the_edge::<IdentityContract>(api);
        let server = TestServer::spawn_with(stack, move |cfg| {
            IdentityContract::configure(cfg, served.clone())
        });
        let client = server.client::<IdentityContract>();
        let v = verifier(client.clone());
        sessions(&format!("http/{}", db.backend), client.as_ref(), &v).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn identity_over_grpc_keeps_sessions_right() {
    for db in test_databases().await {
        let (module, _) = start(&db).await;
        let api: Arc<dyn IdentityApi> = module.clone();
        let auth = authenticator(&api);
        let server = TestGrpcServer::serve_with::<IdentityContract>(api, auth, &[]).await;
        let client = server.client::<IdentityContract>();
        let v = verifier(client.clone());
        sessions(&format!("grpc/{}", db.backend), client.as_ref(), &v).await;
        server.stop().await;
    }
}

async fn one(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_and_refresh_tokens_only_as_hashes() {
    for db in test_databases().await {
        let (module, conn) = start(&db).await;
        let ctx = CallContext::root();
        let email = fresh_email();
        module
            .register(&ctx, creds(&email, "a long passphrase"))
            .await
            .expect("register");
        let pair = module
            .login(&ctx, creds(&email, "a long passphrase"))
            .await
            .expect("login");
        let hashes = one(&conn, "SELECT password_hash FROM identity_users").await;
        assert_eq!(hashes.len(), 1);
        assert!(
            hashes[0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}: {}",
            db.backend,
            hashes[0]
        );
        assert!(!hashes[0].contains("a long passphrase"));
        let stored = one(&conn, "SELECT token_hash FROM identity_refresh_tokens").await;
        assert_eq!(stored.len(), 1);
        assert_ne!(
            stored[0],
            pair.refresh_token.expose(),
            "the token itself is not stored"
        );
        assert_eq!(stored[0].len(), 64);
    }
}

#[tokio::test]
async fn forged_stale_and_misdirected_tokens_are_refused() {
    let db = TestDb::sqlite();
    let (module, conn) = start(&db).await;
    let ctx = CallContext::root();
    let email = fresh_email();
    let user = module
        .create_user(
            &email,
            &Secret("correct horse".into()),
            &["shopper".to_owned()],
        )
        .await
        .expect("create user");
    let pair = module
        .login(&ctx, creds(&email, "correct horse"))
        .await
        .expect("login");
    let api: Arc<dyn IdentityApi> = module.clone();
    let auth = Authenticator {
        verifier: verifier(api.clone()),
        users: Some(Arc::new(IdentityUsers(api.clone()))),
    };
    // The genuine token passes: the cases below fail for their one reason.
    let ok = auth
        .authenticate(pair.access_token.expose())
        .await
        .expect("genuine token");
    assert_eq!(ok.subject, user.user_id);

    let forged =
        identity::testing::forged_tokens(&conn, &user.user_id, pair.refresh_token.expose()).await;
    for Forged {
        case,
        token,
        reason: want,
    } in forged
    {
        match auth.authenticate(&token).await {
            Err(AuthError::Unauthenticated { reason }) => {
                assert!(
                    !reason.contains(&token),
                    "{case}: the reason never echoes the token"
                );
                assert!(
                    reason.contains(want),
                    "{case}: refused for {reason:?}, not {want:?}"
                );
            }
            other => panic!("{case}: {other:?}"),
        }
    }

    // A deleted user's token stops working before it expires.
    let admin = module
        .issue_token("operator", &["admin".to_owned()], 60)
        .await
        .expect("admin token");
    let admin = auth
        .verifier
        .verify(&admin)
        .await
        .expect("admin")
        .principal();
    module
        .delete_user(&ctx.clone().with_principal(admin), user.user_id.clone())
        .await
        .expect("delete");
    match auth.authenticate(pair.access_token.expose()).await {
        Err(AuthError::Unauthenticated { reason }) => assert!(reason.contains("no longer")),
        other => panic!("deleted user's token gave {other:?}"),
    }
}

#[tokio::test]
async fn tokens_signed_before_a_key_rotation_stay_valid_until_they_expire() {
    let db = TestDb::sqlite();
    let (module, _) = start(&db).await;
    let before = module
        .issue_token("someone", &["shopper".to_owned()], 300)
        .await
        .expect("token");
    let new_kid = module.rotate_keys().await.expect("rotate");
    let after = module
        .issue_token("someone", &["shopper".to_owned()], 300)
        .await
        .expect("token");
    let header = jsonwebtoken::decode_header(&after).expect("header");
    assert_eq!(
        header.kid.as_deref(),
        Some(new_kid.as_str()),
        "new tokens use the new key"
    );
    // A verifier that never saw the old key (another process) accepts both.
    let v = verifier(module.clone());
    let old: AccessClaims = v.verify(&before).await.expect("old token still valid");
    v.verify(&after).await.expect("new token valid");
    assert_eq!(old.sub, "someone");
    let jwks = module.jwks(&CallContext::root()).await.expect("jwks");
    assert_eq!(jwks.keys.len(), 2, "both keys published");
}

#[tokio::test]
async fn only_admins_delete_users() {
    let db = TestDb::sqlite();
    let (module, _) = start(&db).await;
    let edge = at_the_edge::<IdentityContract>(module.clone());
    let ctx = CallContext::root();
    let user = module
        .create_user(
            &fresh_email(),
            &Secret("correct horse".into()),
            &["shopper".to_owned()],
        )
        .await
        .expect("create user");
    let shopper = module
        .issue_token(&user.user_id, &["shopper".to_owned()], 60)
        .await
        .expect("token");
    let v = verifier(module.clone());
    let shopper = v.verify(&shopper).await.expect("verify").principal();
    let by_shopper = edge
        .delete_user(&ctx.clone().with_principal(shopper), user.user_id.clone())
        .await;
    assert_eq!(refusal(&by_shopper), Some(403), "{by_shopper:?}");
    let by_nobody = edge.delete_user(&ctx, user.user_id.clone()).await;
    assert_eq!(refusal(&by_nobody), Some(401), "{by_nobody:?}");
    assert!(
        module
            .user_active(&ctx, user.user_id)
            .await
            .expect("status")
            .active
    );
}
