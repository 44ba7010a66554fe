//! Checkout against the real modules (composed here, since only the root crate names module
//! implementations): the contract suite in process and over HTTP, and the
//! saga's failure cases (compensation, lost answers, interruption, idempotency), each checked
//! in payment's own records: never a charge without an order or a refund.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cart_api::{CartApi, CartContract};
use checkout::{CheckoutConfig, CheckoutDeps, CheckoutModule};
use checkout_api::contract::{self, Fixture, request};
use checkout_api::{CheckoutApi, CheckoutContract, CheckoutError, IdempotencyKey};
use cleave_domain::{ProductId, UserId};
use cleave_kernel::auth::{Authenticator, TokenVerifier};
use cleave_kernel::context::Principal;
use cleave_kernel::events::{Relay, now_ms};
use cleave_kernel::http::ServerStack;
use cleave_kernel::module::Contract;
use cleave_kernel::testing::{TestDb, TestGrpcServer, TestServer, at_the_edge, test_databases};
use cleave_kernel::{ApiError, CallContext};
use identity_api::IdentityKeys;
use payment_api::{Charge, ChargeRequest, ChargeStatus, PaymentApi, PaymentContract, PaymentError};
use sea_orm::DatabaseConnection;
use shipping_api::{Quote, QuoteRequest, ShipOrderRequest, Shipment, ShippingApi, ShippingError};
use tokio::sync::{Notify, Semaphore};

/// Every module checkout needs, real, over one database.
struct Shop {
    conn: DatabaseConnection,
    deps: CheckoutDeps,
    payment: Arc<dyn PaymentApi>,
}

async fn shop(db: &TestDb) -> Shop {
    let conn = db.connect().await;
    for m in [
        "catalog", "currency", "cart", "shipping", "payment", "checkout", "identity",
    ] {
        cleave::modules::find(m)
            .expect("module")
            .migrate(&conn)
            .await
            .expect("migrate");
    }
    cleave::modules::migrate_events(&conn)
        .await
        .expect("migrate the outbox");
    let catalog = catalog::CatalogModule::start(
        conn.clone(),
        &Default::default(),
        catalog::CatalogDeps,
        Relay::disabled(),
    )
    .await
    .expect("catalog");
    let payment: Arc<dyn PaymentApi> =
        payment::PaymentModule::new(conn.clone(), &Default::default(), payment::PaymentDeps);
    let deps = CheckoutDeps {
        cart: cart::CartModule::new(
            conn.clone(),
            &Default::default(),
            cart::CartDeps,
            cleave_kernel::events::Relay::disabled(),
        ),
        catalog,
        currency: currency::CurrencyModule::new(
            conn.clone(),
            &Default::default(),
            currency::CurrencyDeps,
        ),
        shipping: shipping::ShippingModule::new(
            conn.clone(),
            &Default::default(),
            shipping::ShippingDeps,
        ),
        payment: payment.clone(),
    };
    Shop {
        conn,
        deps,
        payment,
    }
}

fn checkout_with(shop: &Shop, deps: CheckoutDeps) -> Arc<CheckoutModule> {
    CheckoutModule::new(
        shop.conn.clone(),
        &CheckoutConfig::default(),
        deps,
        Relay::disabled(),
    )
}

/// Fills carts, and signs users in: in process a bare principal, over HTTP one carrying a
/// token from a real identity module.
struct CartFixture(Arc<dyn CartApi>, Option<Arc<identity::IdentityModule>>);

/// Checkout over the shop's modules, charging through `payment`.
fn paying_through(shop: &Shop, payment: Arc<RecordingPayment>) -> Arc<CheckoutModule> {
    checkout_with(
        shop,
        CheckoutDeps {
            payment,
            ..shop.deps.clone()
        },
    )
}

/// How many placed orders `shopper` has.
/// Checkout paying through `payment`, and a shopper with a filled cart.
async fn shopper_paying_through(
    shop: &Shop,
    payment: RecordingPayment,
) -> (Arc<RecordingPayment>, Arc<CheckoutModule>, UserId) {
    let payment = Arc::new(payment);
    let checkout = paying_through(shop, payment.clone());
    let shopper = user();
    fill(shop, &shopper).await;
    (payment, checkout, shopper)
}

async fn orders_of(checkout: &CheckoutModule, shopper: &UserId) -> usize {
    checkout
        .list_orders(&owner(shopper), shopper.clone())
        .await
        .expect("list")
        .len()
}

fn fixture(shop: &Shop) -> CartFixture {
    CartFixture(shop.deps.cart.clone(), None)
}

/// A context signed in as `user` (in process: no token needed).
fn owner(user: &UserId) -> CallContext {
    CallContext::root().with_principal(Principal {
        subject: user.to_string(),
        roles: vec!["shopper".into()],
        access_token: None,
    })
}

#[async_trait]
impl Fixture for CartFixture {
    async fn principal(&self, user: &UserId, roles: &[&str]) -> Principal {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let access_token = match &self.1 {
            Some(identity) => Some(Arc::from(
                identity
                    .issue_token(user.as_str(), &roles, 300)
                    .await
                    .expect("token")
                    .as_str(),
            )),
            None => None,
        };
        Principal {
            subject: user.to_string(),
            roles,
            access_token,
        }
    }

    async fn add_to_cart(&self, user: &UserId, product: &ProductId, quantity: i64) {
        self.0
            .add_item(
                &CallContext::root(),
                user.clone(),
                product.clone(),
                quantity,
            )
            .await
            .expect("add to cart");
    }

    async fn cart_lines(&self, user: &UserId) -> usize {
        self.0
            .get_cart(&CallContext::root(), user.clone())
            .await
            .expect("cart")
            .items
            .len()
    }
}

fn user() -> UserId {
    UserId::parse(format!("saga-{}", CallContext::root().request_id())).expect("user")
}

async fn fill(shop: &Shop, user: &UserId) {
    fixture(shop)
        .add_to_cart(user, &ProductId::parse("L9ECAV7KIM").expect("id"), 1)
        .await;
}

/// The charge payment holds for `reference`, if any.
async fn charge_for(shop: &Shop, reference: &str) -> Option<Charge> {
    match shop
        .payment
        .find_charge(&CallContext::root(), reference.to_owned())
        .await
    {
        Ok(c) => Some(c),
        Err(PaymentError::TransactionNotFound { .. }) => None,
        Err(e) => panic!("find charge: {e:?}"),
    }
}

/// Payment that records the reference of every charge asked for.
struct RecordingPayment {
    inner: Arc<dyn PaymentApi>,
    references: Mutex<Vec<String>>,
    lose_answer: bool,
    gate: Option<(Arc<Notify>, Arc<Semaphore>)>,
    /// While set, a charge is made but its answer lost, and nothing else answers: an outage
    /// that starts during the charge.
    down: std::sync::atomic::AtomicBool,
}

impl RecordingPayment {
    fn new(inner: Arc<dyn PaymentApi>) -> Self {
        Self {
            inner,
            references: Mutex::new(Vec::new()),
            lose_answer: false,
            gate: None,
            down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn is_down(&self) -> Result<(), PaymentError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PaymentError::unavailable("payment is down".into()));
        }
        Ok(())
    }

    fn references(&self) -> Vec<String> {
        self.references.lock().expect("lock").clone()
    }
}

#[async_trait]
impl PaymentApi for RecordingPayment {
    async fn charge(&self, ctx: &CallContext, req: ChargeRequest) -> Result<Charge, PaymentError> {
        self.references
            .lock()
            .expect("lock")
            .push(req.reference.clone().unwrap_or_default());
        if let Some((entered, release)) = &self.gate {
            entered.notify_one();
            let _permit = release.acquire().await.expect("gate");
        }
        let charged = self.inner.charge(ctx, req).await?;
        if self.lose_answer || self.is_down().is_err() {
            return Err(PaymentError::unavailable(
                "answer lost on the way back".into(),
            ));
        }
        Ok(charged)
    }
    async fn refund(&self, ctx: &CallContext, id: String) -> Result<Charge, PaymentError> {
        self.is_down()?;
        self.inner.refund(ctx, id).await
    }
    async fn get_charge(&self, ctx: &CallContext, id: String) -> Result<Charge, PaymentError> {
        self.is_down()?;
        self.inner.get_charge(ctx, id).await
    }
    async fn find_charge(&self, ctx: &CallContext, r: String) -> Result<Charge, PaymentError> {
        self.is_down()?;
        self.inner.find_charge(ctx, r).await
    }
}

/// Shipping whose `ship_order` fails (or never answers).
struct BrokenShipping {
    inner: Arc<dyn ShippingApi>,
    hang: bool,
    /// Told when `ship_order` is reached (the charge is recorded by then).
    entered: Arc<Notify>,
}

#[async_trait]
impl ShippingApi for BrokenShipping {
    async fn get_quote(
        &self,
        ctx: &CallContext,
        req: QuoteRequest,
    ) -> Result<Quote, ShippingError> {
        self.inner.get_quote(ctx, req).await
    }
    async fn ship_order(
        &self,
        _: &CallContext,
        _: ShipOrderRequest,
    ) -> Result<Shipment, ShippingError> {
        self.entered.notify_one();
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(ShippingError::unavailable("carrier down".into()))
    }
    async fn get_shipment(&self, ctx: &CallContext, id: String) -> Result<Shipment, ShippingError> {
        self.inner.get_shipment(ctx, id).await
    }
}

#[tokio::test]
async fn checkout_in_process_meets_the_contract() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        // The suite calls as outside callers do: the access rules apply.
        let checkout = at_the_edge::<CheckoutContract>(checkout_with(&shop, shop.deps.clone()));
        contract::run(
            &format!("in-process/{}", db.backend),
            checkout.as_ref(),
            &fixture(&shop),
        )
        .await;
    }
}

/// A real identity module on the shop's database, and a token check trusting its keys.
async fn identity_of(shop: &Shop) -> (Arc<identity::IdentityModule>, Arc<Authenticator>) {
    let identity = identity::IdentityModule::start(
        shop.conn.clone(),
        &Default::default(),
        identity::IdentityDeps,
        Relay::disabled(),
    )
    .await
    .expect("identity");
    let auth = Arc::new(Authenticator {
        verifier: TokenVerifier::new(
            "cleave",
            "cleave",
            30,
            Arc::new(IdentityKeys(identity.clone())),
        ),
        users: None,
    });
    (identity, auth)
}

#[tokio::test]
async fn checkout_over_http_with_remote_cart_and_payment_meets_the_contract() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        // Every server verifies tokens from a real identity module's keys.
        let (identity, auth) = identity_of(&shop).await;
        let stack = ServerStack {
            authenticator: Some(auth),
            ..ServerStack::default()
        };
        // Cart and payment each behind their own HTTP server, checkout behind a third. The
        // shopper's token travels with checkout's calls to them.
        let (cart, payment) = (shop.deps.cart.clone(), shop.payment.clone());
        let cart_server = TestServer::spawn_with(stack.clone(), move |cfg| {
            CartContract::configure(cfg, cart.clone())
        });
        let payment_server = TestServer::spawn_with(stack.clone(), move |cfg| {
            PaymentContract::configure(cfg, payment.clone())
        });
        let deps = CheckoutDeps {
            cart: cart_server.client::<CartContract>(),
            payment: payment_server.client::<PaymentContract>(),
            ..shop.deps.clone()
        };
        let api = at_the_edge::<CheckoutContract>(checkout_with(&shop, deps));
        let checkout_server = TestServer::spawn_with(stack, move |cfg| {
            CheckoutContract::configure(cfg, api.clone())
        });
        let remote = checkout_server.client::<CheckoutContract>();
        contract::run(
            &format!("http/{}", db.backend),
            remote.as_ref(),
            &CartFixture(shop.deps.cart.clone(), Some(identity)),
        )
        .await;
        for s in [checkout_server, payment_server, cart_server] {
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn checkout_over_grpc_with_cart_and_payment_over_grpc_meets_the_contract() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let (identity, auth) = identity_of(&shop).await;
        // Cart, payment and checkout each behind their own gRPC server, with their access
        // rules; checkout reaches the other two over gRPC, relaying the shopper's token (her
        // cart is hers). Charges are for checkout only: payment's listener is the trusted
        // internal kind (`server.grpc_trusted`), there being no client certificates here.
        let cart_server =
            TestGrpcServer::serve_with::<CartContract>(shop.deps.cart.clone(), auth.clone(), &[])
                .await;
        let payment_server = TestGrpcServer::serve_with::<PaymentContract>(
            shop.payment.clone(),
            auth.clone(),
            &["checkout"],
        )
        .await;
        let deps = CheckoutDeps {
            cart: cart_server.client::<CartContract>(),
            payment: payment_server.client::<PaymentContract>(),
            ..shop.deps.clone()
        };
        let checkout_server =
            TestGrpcServer::serve_with::<CheckoutContract>(checkout_with(&shop, deps), auth, &[])
                .await;
        let remote = checkout_server.client::<CheckoutContract>();
        contract::run(
            &format!("grpc/{}", db.backend),
            remote.as_ref(),
            &CartFixture(shop.deps.cart.clone(), Some(identity)),
        )
        .await;
        for s in [checkout_server, payment_server, cart_server] {
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn a_shipping_failure_after_the_charge_refunds_it_and_places_no_order() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let payment = Arc::new(RecordingPayment::new(shop.payment.clone()));
        let deps = CheckoutDeps {
            shipping: Arc::new(BrokenShipping {
                inner: shop.deps.shipping.clone(),
                hang: false,
                entered: Arc::new(Notify::new()),
            }),
            payment: payment.clone(),
            ..shop.deps.clone()
        };
        let checkout = checkout_with(&shop, deps);
        let shopper = user();
        fill(&shop, &shopper).await;
        let err = checkout
            .place_order(&CallContext::root(), request(&shopper, "USD"), None)
            .await
            .expect_err("fails");
        assert!(
            matches!(err, CheckoutError::Unavailable { .. }),
            "{}: {err:?}",
            db.backend
        );
        let [reference] = payment.references().try_into().expect("one charge asked");
        let charge = charge_for(&shop, &reference)
            .await
            .expect("the card was charged");
        assert_eq!(
            charge.status,
            ChargeStatus::Refunded,
            "{}: and refunded",
            db.backend
        );
        assert_eq!(orders_of(&checkout, &shopper).await, 0, "no order");
        assert_eq!(
            fixture(&shop).cart_lines(&shopper).await,
            1,
            "the cart is kept"
        );
    }
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_found_by_reference_and_refunded() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let mut recording = RecordingPayment::new(shop.payment.clone());
        recording.lose_answer = true;
        let (payment, checkout, shopper) = shopper_paying_through(&shop, recording).await;
        let err = checkout
            .place_order(&CallContext::root(), request(&shopper, "EUR"), None)
            .await
            .expect_err("fails");
        assert!(matches!(err, CheckoutError::Unavailable { .. }), "{err:?}");
        let [reference] = payment.references().try_into().expect("one charge");
        let charge = charge_for(&shop, &reference)
            .await
            .expect("the charge happened");
        assert_eq!(charge.status, ChargeStatus::Refunded, "{}", db.backend);
        assert_eq!(orders_of(&checkout, &shopper).await, 0, "no order");
    }
}

#[tokio::test]
async fn a_declined_card_leaves_no_charge_and_no_order() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let (payment, checkout, shopper) =
            shopper_paying_through(&shop, RecordingPayment::new(shop.payment.clone())).await;
        let mut req = request(&shopper, "USD");
        req.credit_card.number = "378282246310005".into(); // American Express: not accepted
        let err = checkout
            .place_order(&CallContext::root(), req, None)
            .await
            .expect_err("declined");
        assert!(
            matches!(&err, CheckoutError::PaymentDeclined { reason, .. } if reason == "payment.unsupported_card"),
            "{err:?}"
        );
        let [reference] = payment.references().try_into().expect("one charge asked");
        assert_eq!(
            charge_for(&shop, &reference).await,
            None,
            "{}: no charge",
            db.backend
        );
        assert_eq!(orders_of(&checkout, &shopper).await, 0, "no order");
    }
}

#[tokio::test]
async fn an_interrupted_checkout_is_refunded_by_recovery() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let payment = Arc::new(RecordingPayment::new(shop.payment.clone()));
        let entered = Arc::new(Notify::new());
        let deps = CheckoutDeps {
            shipping: Arc::new(BrokenShipping {
                inner: shop.deps.shipping.clone(),
                hang: true,
                entered: entered.clone(),
            }),
            payment: payment.clone(),
            ..shop.deps.clone()
        };
        let checkout = checkout_with(&shop, deps);
        let shopper = user();
        fill(&shop, &shopper).await;
        // The saga stops for good while shipping (as when its process dies there).
        let ctx = CallContext::root();
        let place = checkout.place_order(&ctx, request(&shopper, "USD"), None);
        tokio::select! {
            _ = place => panic!("shipping never answers"),
            () = entered.notified() => {}
        }
        let [reference] = payment.references().try_into().expect("one charge");
        assert_eq!(
            charge_for(&shop, &reference).await.expect("charged").status,
            ChargeStatus::Charged
        );

        // Recovery leaves fresh attempts alone and compensates stale ones.
        assert_eq!(
            checkout.recover().await.expect("recover"),
            0,
            "too fresh to be taken for dead"
        );
        let resolved = checkout
            .recover_older_than(now_ms() + 1)
            .await
            .expect("recover");
        assert_eq!(resolved, 1, "{}", db.backend);
        assert_eq!(
            charge_for(&shop, &reference).await.expect("charge").status,
            ChargeStatus::Refunded
        );
        assert_eq!(orders_of(&checkout, &shopper).await, 0, "no order");
        assert_eq!(
            checkout
                .recover_older_than(now_ms() + 1)
                .await
                .expect("again"),
            0,
            "resolved once"
        );
    }
}

#[tokio::test]
async fn a_concurrent_duplicate_gets_409_and_a_retry_gets_the_first_order_charged_once() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Semaphore::new(0));
        let mut recording = RecordingPayment::new(shop.payment.clone());
        recording.gate = Some((entered.clone(), release.clone()));
        let (payment, checkout, shopper) = shopper_paying_through(&shop, recording).await;
        let key = IdempotencyKey::parse("retry-me-1").expect("key");

        let first = {
            let (checkout, req, key) = (checkout.clone(), request(&shopper, "USD"), key.clone());
            tokio::spawn(async move {
                checkout
                    .place_order(&CallContext::root(), req, Some(key))
                    .await
            })
        };
        entered.notified().await; // the first request is inside the charge
        let duplicate = checkout
            .place_order(
                &CallContext::root(),
                request(&shopper, "USD"),
                Some(key.clone()),
            )
            .await;
        assert!(
            matches!(
                duplicate,
                Err(CheckoutError::RequestInProgress {
                    retry_after_secs: 1
                })
            ),
            "{}: {duplicate:?}",
            db.backend
        );

        release.add_permits(10);
        let order = first.await.expect("task").expect("first order");
        let retry = checkout
            .place_order(&CallContext::root(), request(&shopper, "USD"), Some(key))
            .await
            .expect("retry");
        assert_eq!(retry, order);
        assert_eq!(
            payment.references().len(),
            1,
            "{}: charged once",
            db.backend
        );
        assert_eq!(orders_of(&checkout, &shopper).await, 1);
    }
}

#[tokio::test]
async fn a_key_whose_checkout_hit_an_outage_is_settled_by_the_next_try_once_payment_is_back() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let (payment, checkout, shopper) =
            shopper_paying_through(&shop, RecordingPayment::new(shop.payment.clone())).await;
        let key = IdempotencyKey::parse("outage-1").expect("key");
        let root = CallContext::root();
        let place = || checkout.place_order(&root, request(&shopper, "USD"), Some(key.clone()));

        // The charge is made, then payment goes down: it cannot be undone yet.
        payment
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = place().await.expect_err("payment is down");
        assert_eq!(
            (err.code(), err.status_u16(), err.retry_after_secs()),
            ("checkout.unavailable", 503, Some(2)),
            "{}: {err:?}",
            db.backend
        );
        let [first] = payment.references().try_into().expect("one charge");
        // A retry while payment is still down: told when to come back, nothing charged.
        let err = place().await.expect_err("still down");
        assert_eq!(
            err,
            CheckoutError::RequestInProgress {
                retry_after_secs: 2
            },
            "{}",
            db.backend
        );
        assert_eq!(payment.references().len(), 1, "no second charge");

        // Payment is back: the next try undoes the first attempt and places the order, with
        // no recovery pass in between.
        payment
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let order = place().await.expect("placed once payment is back");
        let refs = payment.references();
        assert_eq!(refs.len(), 2, "{}: {refs:?}", db.backend);
        let first_charge = charge_for(&shop, &first).await.expect("first charge");
        assert_eq!(
            first_charge.status,
            ChargeStatus::Refunded,
            "{}",
            db.backend
        );
        let second = charge_for(&shop, &refs[1]).await.expect("second charge");
        assert_eq!(second.transaction_id, order.transaction_id);
        assert_ne!(second.status, ChargeStatus::Refunded);
        // And the key now replays the order.
        assert_eq!(place().await.expect("replay"), order);
        assert_eq!(payment.references().len(), 2);
        assert_eq!(orders_of(&checkout, &shopper).await, 1, "{}", db.backend);
    }
}

/// `checkout.order_placed` events in the outbox (the cart's own events go there too).
async fn order_events(conn: &DatabaseConnection) -> i64 {
    cleave_kernel::testing::count(
        conn,
        "SELECT COUNT(*) AS n FROM events_outbox WHERE topic = 'checkout.order_placed'",
    )
    .await
}

#[tokio::test]
async fn a_placed_order_writes_order_placed_to_the_outbox_in_its_transaction() {
    for db in test_databases().await {
        let shop = shop(&db).await;
        let checkout = checkout_with(&shop, shop.deps.clone());
        let shopper = user();
        fill(&shop, &shopper).await;
        let before = order_events(&shop.conn).await;
        checkout
            .place_order(&CallContext::root(), request(&shopper, "USD"), None)
            .await
            .expect("order");
        assert_eq!(order_events(&shop.conn).await, before + 1, "{}", db.backend);
        let mut bad = request(&user(), "USD");
        bad.email = "x".into();
        let _ = checkout.place_order(&CallContext::root(), bad, None).await;
        assert_eq!(
            order_events(&shop.conn).await,
            before + 1,
            "no event without an order"
        );
    }
}
