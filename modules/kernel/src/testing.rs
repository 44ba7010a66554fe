//! Test helpers (feature `test-util`): fresh databases, servers on random ports with the
//! production middleware stack, signing keys, and [`ContractHarness`], which runs a contract
//! suite against a module in process and over HTTP on every test database.
//!
//! Every database test runs on a fresh SQLite file, and again on a fresh PostgreSQL database
//! when `CLEAVE_TEST_DATABASE_URL` is set (CI sets it). If the variable is set and PostgreSQL
//! cannot be reached, the helpers panic: a test never passes by skipping a backend.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{HttpServer, web};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use url::Url;

use crate::call::{CallLayers, CallPath, EDGE, Locality};
use crate::client::{RemoteClient, RemoteSettings};
use crate::http::ServerStack;
use crate::module::{Assembly, Contract, MigrationSet, Module};

pub use crate::config::TEST_DATABASE_URL_ENV;

/// A database of its own for one test. Dropping it removes it.
pub struct TestDb {
    /// `sqlite` or `postgres`: printed in assertion messages.
    pub backend: &'static str,
    /// Connection url of this database.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for a test database");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self {
            backend: "sqlite",
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database created through the admin url.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached or refuses to create the database.
    pub async fn postgres(admin_url: &str) -> Self {
        let name = format!("cleave_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL_ENV}={admin_url} is unreachable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let mut url = Url::parse(admin_url).expect("CLEAVE_TEST_DATABASE_URL is a url");
        url.set_path(&name);
        Self {
            backend: "postgres",
            url: url.to_string(),
            _dir: None,
            pg: Some((admin_url.to_owned(), name)),
        }
    }

    /// Connects to this database (schema not created; run the module's migrator).
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn connect(&self) -> DatabaseConnection {
        crate::db::connect(&self.url, 5)
            .await
            .unwrap_or_else(|e| panic!("connect to {} test database: {e}", self.backend))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            // Async drop does not exist: drop the database from a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let admin = Database::connect(&admin_url).await.ok()?;
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// The databases every database test runs on: SQLite always, PostgreSQL when
/// `CLEAVE_TEST_DATABASE_URL` is set.
pub async fn test_databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite()];
    if let Ok(url) = std::env::var(TEST_DATABASE_URL_ENV)
        && !url.is_empty()
    {
        dbs.push(TestDb::postgres(&url).await);
    }
    dbs
}

/// A server on a random loopback port, with the production middleware stack.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: Url,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Starts serving the routes `configure` registers, with the default stack (no token
    /// verifier: bearer tokens are refused).
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn spawn<F>(configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        Self::spawn_with(ServerStack::default(), configure)
    }

    /// Starts serving the routes `configure` registers behind `stack`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn spawn_with<F>(stack: ServerStack, configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
        let port = listener.local_addr().expect("local address").port();
        let server =
            HttpServer::new(move || crate::http::app(stack.clone()).configure(configure.clone()))
                .workers(1)
                .tcp_nodelay(true)
                .disable_signals()
                .listen(listener)
                .expect("listen on the bound port")
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        let base_url = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
        Self { base_url, handle }
    }

    /// Serves contract `C` from `api`, verifying tokens signed by `keys`; every call passes
    /// the operations' access rules, as in `cleave serve`.
    pub fn serve<C: Contract>(api: Arc<C::Api>, keys: &Arc<TestKeys>) -> Self {
        let stack = ServerStack {
            authenticator: Some(keys.authenticator()),
            ..ServerStack::default()
        };
        let api = at_the_edge::<C>(api);
        Self::spawn_with(stack, move |cfg| C::configure(cfg, api.clone()))
    }

    /// Contract `C` over HTTP, calling this server.
    ///
    /// # Panics
    /// When `C` has no client or the client cannot be built.
    pub fn client<C: Contract>(&self) -> Arc<C::Api> {
        let remote =
            RemoteClient::new(C::MODULE, self.base_url.clone(), &RemoteSettings::default())
                .expect("remote client");
        C::client(remote).expect("the contract has a client")
    }

    /// Stops the server, letting in-flight requests finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// A contract's gRPC service (see [`crate::grpc`]) on a random loopback port, as `cleave
/// serve` serves it on `server.grpc_listen`.
pub struct TestGrpcServer {
    /// `grpc://127.0.0.1:<port>`.
    pub url: Url,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestGrpcServer {
    /// Serves contract `C` from `api`, verifying tokens signed by `keys`; every call passes
    /// the operations' access rules.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn serve<C: Contract>(api: Arc<C::Api>, keys: &Arc<TestKeys>) -> Self {
        Self::serve_with::<C>(api, keys.authenticator(), &[]).await
    }

    /// Serves contract `C` from `api`, verifying tokens with `authenticator`, taking every
    /// caller as the modules `trusted_as` (a listener with `server.grpc_trusted`; none:
    /// callers prove who they are); every call passes the operations' access rules.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn serve_with<C: Contract>(
        api: Arc<C::Api>,
        authenticator: Arc<crate::auth::Authenticator>,
        trusted_as: &[&'static str],
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a random port");
        let port = listener.local_addr().expect("local address").port();
        let edge = Arc::new(crate::grpc::Edge {
            authenticator: Some(authenticator),
            trusted_as: (!trusted_as.is_empty()).then(|| Arc::from(trusted_as)),
            modules: Arc::from([C::MODULE]),
            handler_timeout: std::time::Duration::from_secs(30),
        });
        let service =
            crate::module::ContractService::<C>::new(at_the_edge::<C>(api), edge, 64 * 1024);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = crate::grpc::incoming(listener);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .expect("the gRPC test server runs");
        });
        let url = Url::parse(&format!("grpc://127.0.0.1:{port}")).expect("url");
        Self {
            url,
            stop: Some(stop),
            task,
        }
    }

    /// Contract `C` over gRPC, calling this server through the remote-call pipeline.
    ///
    /// # Panics
    /// When `C` has no client or the client cannot be built.
    pub fn client<C: Contract>(&self) -> Arc<C::Api> {
        let remote = RemoteClient::new(C::MODULE, self.url.clone(), &RemoteSettings::default())
            .expect("remote client");
        C::client(remote).expect("the contract has a client")
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A signing key of its own, for tests of modules that need signed-in callers without an
/// identity module: it publishes its public key like identity does and mints access tokens.
pub struct TestKeys {
    kid: String,
    pkcs8: Vec<u8>,
    x: String,
}

impl TestKeys {
    /// A fresh Ed25519 key.
    ///
    /// # Panics
    /// When no key can be generated.
    pub fn new() -> std::sync::Arc<Self> {
        Self::named("test-key")
    }

    /// A fresh Ed25519 key published under `kid` (keys of one verifier have distinct ones).
    ///
    /// # Panics
    /// When no key can be generated.
    pub fn named(kid: &str) -> std::sync::Arc<Self> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
        std::sync::Arc::new(Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        })
    }

    /// An access token for `sub` with `roles` (issuer and audience `cleave`, 5 minutes).
    ///
    /// # Panics
    /// When signing fails.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        let now = crate::events::now_ms() / 1000;
        let claims = crate::auth::AccessClaims {
            iss: "cleave".into(),
            aud: "cleave".into(),
            sub: sub.into(),
            exp: now + 300,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        };
        crate::auth::sign_access_token(&claims, &self.kid, &self.pkcs8).expect("sign")
    }

    /// A principal for `sub` with `roles`, carrying a token (so it travels over HTTP).
    pub fn principal(&self, sub: &str, roles: &[&str]) -> crate::context::Principal {
        crate::context::Principal {
            subject: sub.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            access_token: Some(std::sync::Arc::from(self.token(sub, roles).as_str())),
        }
    }

    /// An authenticator trusting this key (register it as app data of a test server).
    pub fn authenticator(
        self: &std::sync::Arc<Self>,
    ) -> std::sync::Arc<crate::auth::Authenticator> {
        std::sync::Arc::new(crate::auth::Authenticator {
            verifier: crate::auth::TokenVerifier::new("cleave", "cleave", 30, self.clone()),
            users: None,
        })
    }
}

impl TestKeys {
    /// The key as identity publishes it.
    pub fn public(&self) -> crate::auth::PublicJwk {
        crate::auth::PublicJwk::ed25519(&self.kid, &self.x)
    }
}

#[async_trait::async_trait]
impl crate::auth::KeySource for TestKeys {
    async fn jwks(&self) -> Result<crate::auth::Jwks, String> {
        Ok(crate::auth::Jwks {
            keys: vec![self.public()],
        })
    }
}

/// Where a contract suite runs: its label for failure messages (`in-process/sqlite`,
/// `http/postgres`, ...), the contract object, and the signing keys the servers trust.
pub struct Placed<A: ?Sized> {
    /// `<placement>/<database>`.
    pub label: String,
    /// The module (in process) or its client (over HTTP).
    pub api: Arc<A>,
    /// Keys for tokens the module accepts.
    pub keys: Arc<TestKeys>,
}

impl<A: ?Sized> Placed<A> {
    /// A context acting for `sub` with `roles` (with a token, so it travels over HTTP).
    pub fn as_user(&self, sub: &str, roles: &[&str]) -> crate::CallContext {
        crate::CallContext::root().with_principal(self.keys.principal(sub, roles))
    }
}

/// What `sql` (`SELECT COUNT(*) AS n FROM ...`) counts on `conn`.
///
/// # Panics
/// When the query fails or gives no `n`.
pub async fn count(conn: &impl sea_orm::ConnectionTrait, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get::<i64>("", "n")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The status of the refusal `result` is (401 or 403), if it is one: for suites checking
/// the operations' access rules.
pub fn refusal<T, E: crate::ApiError>(result: &Result<T, E>) -> Option<u16> {
    match result {
        Err(e) if E::REFUSALS.contains(&e.code()) => Some(e.status_u16()),
        _ => None,
    }
}

/// `api` as callers from outside the process reach it: every call passes the operations'
/// access rules ([`crate::call::Access`]).
pub fn at_the_edge<C: Contract>(api: Arc<C::Api>) -> Arc<C::Api> {
    let path = CallPath::new(EDGE, C::MODULE, Locality::Local, CallLayers::default());
    C::intercept(api, path)
}

type Provide = Arc<dyn Fn(&mut Assembly) + Send + Sync>;

/// Runs a module's contract suite in process, over HTTP and over gRPC (the module served on a random
/// port, called through its client), on SQLite and, when configured, PostgreSQL: one fresh
/// database per run.
pub struct ContractHarness<M: Module> {
    config: M::Config,
    migrate: Vec<Migrate>,
    provide: Provide,
}

/// Applies one set of migrations.
type Migrate =
    for<'a> fn(&'a DatabaseConnection) -> crate::call::BoxFuture<'a, Result<(), sea_orm::DbErr>>;

impl<M: Module> ContractHarness<M> {
    /// A harness for `M` with its migrations `S` and default settings.
    pub fn new<S: MigrationSet>() -> Self {
        Self {
            config: M::Config::default(),
            migrate: vec![S::up],
            provide: Arc::new(|_| {}),
        }
    }

    /// Also with the migrations `S` (the outbox's, for a module that publishes events).
    #[must_use]
    pub fn with_migrations<S: MigrationSet>(mut self) -> Self {
        self.migrate.push(S::up);
        self
    }

    /// With these settings.
    #[must_use]
    pub fn config(mut self, config: M::Config) -> Self {
        self.config = config;
        self
    }

    /// With the dependencies `provide` places (fakes, or real modules) before `M` starts.
    #[must_use]
    pub fn provide(mut self, provide: impl Fn(&mut Assembly) + Send + Sync + 'static) -> Self {
        self.provide = Arc::new(provide);
        self
    }

    /// A connection to `db` with `M`'s migrations applied: for tests that build the module
    /// themselves.
    ///
    /// # Panics
    /// When a migration fails.
    pub async fn migrated(&self, db: &TestDb) -> DatabaseConnection {
        let conn = db.connect().await;
        for migrate in &self.migrate {
            migrate(&conn)
                .await
                .unwrap_or_else(|e| panic!("migrate {}: {e}", M::Contract::MODULE));
        }
        conn
    }

    /// `M` started on a fresh, migrated `db`, with its dependencies provided, trusting `keys`.
    ///
    /// # Panics
    /// When migrations or the start fail.
    pub async fn start(
        &self,
        db: &TestDb,
        keys: &Arc<TestKeys>,
    ) -> Arc<<M::Contract as Contract>::Api> {
        let conn = self.migrated(db).await;
        let mut asm = Assembly::standalone(Some(conn));
        asm.set_authenticator(keys.authenticator());
        (self.provide)(&mut asm);
        asm.start::<M>(self.config.clone())
            .await
            .unwrap_or_else(|e| panic!("start {}: {e}", M::Contract::MODULE))
    }

    /// Runs `suite` against `M` in process, over HTTP and over gRPC, on every test database.
    pub async fn run<F, Fut>(&self, suite: F)
    where
        F: Fn(Placed<<M::Contract as Contract>::Api>) -> Fut,
        Fut: Future<Output = ()>,
    {
        for placement in ["in-process", "http", "grpc"] {
            for db in test_databases().await {
                let keys = TestKeys::new();
                let api = self.start(&db, &keys).await;
                let label = format!("{placement}/{}", db.backend);
                if placement == "in-process" {
                    // The suite is a caller from outside: the access rules apply here too.
                    let api = at_the_edge::<M::Contract>(api);
                    suite(Placed { label, api, keys }).await;
                } else if placement == "grpc" {
                    let server = TestGrpcServer::serve::<M::Contract>(api, &keys).await;
                    let api = server.client::<M::Contract>();
                    suite(Placed { label, api, keys }).await;
                    server.stop().await;
                } else {
                    let server = TestServer::serve::<M::Contract>(api, &keys);
                    let api = server.client::<M::Contract>();
                    suite(Placed { label, api, keys }).await;
                    server.stop().await;
                }
            }
        }
    }
}
