//! The email contract suite in process and over HTTP, and the OrderPlaced subscription.

use std::sync::Arc;

use checkout_api::{Order, OrderItem, OrderPlaced, OrderStatus};
use cleave_domain::{Money, ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::events::{EventBus, InProcessBus, RelaySettings, enqueue, relay_pass, stats};
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, test_databases};
use cleave_migrations::MigratorTrait;
use email::{EmailConfig, EmailDeps, EmailModule, MailTransport};
use email_api::{EmailApi, contract};

fn harness() -> ContractHarness<EmailModule> {
    ContractHarness::new::<Migrations<cleave_migrations::email::Migrator>>()
        .with_migrations::<Migrations<cleave_migrations::events::Migrator>>()
}

async fn start(db: &TestDb, config: &EmailConfig) -> Arc<EmailModule> {
    EmailModule::new(harness().migrated(db).await, config, EmailDeps)
}

#[tokio::test]
async fn email_meets_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move {
            contract::run(&p.label, p.api.as_ref(), &p.as_user("ops", &["admin"])).await
        })
        .await;
}

fn usd(units: i64, nanos: i32) -> Money {
    Money::new("USD", units, nanos).expect("money")
}

fn placed(order_id: &str) -> OrderPlaced {
    let address = checkout_api::contract::address();
    OrderPlaced {
        order: Order {
            order_id: order_id.into(),
            user_id: UserId::parse("shopper").expect("user"),
            status: OrderStatus::Placed,
            email: "someone@example.com".into(),
            shipping_address: address,
            shipping_tracking_id: "XY-00001-0000001".into(),
            shipping_cost: usd(8, 990_000_000),
            items: vec![OrderItem {
                product_id: ProductId::parse("6E92ZMYYFZ").expect("product"),
                name: "Mug".into(),
                quantity: 1,
                unit_price: usd(8, 990_000_000),
                cost: usd(8, 990_000_000),
            }],
            total: usd(17, 980_000_000),
            transaction_id: "t-1".into(),
            card_last4: "0454".into(),
            created_at: "2026-11-24T10:00:00.000Z".into(),
        },
    }
}

#[tokio::test]
async fn an_order_placed_event_sends_one_confirmation_even_when_delivered_twice() {
    for db in test_databases().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmailConfig {
            transport: MailTransport::File,
            dir: dir.path().to_path_buf(),
        };
        let module = start(&db, &config).await;
        let bus = InProcessBus::new();
        module.subscribe(bus.as_ref());
        let conn = db.connect().await;
        let order_id = format!("o-{}", uuid::Uuid::now_v7());
        let event_id = enqueue(&conn, &CallContext::root(), &placed(&order_id))
            .await
            .expect("enqueue");

        assert!(
            !relay_pass(&conn, bus.as_ref(), RelaySettings::default())
                .await
                .expect("relay")
        );
        let stats_after = stats(&conn).await.expect("stats");
        assert_eq!(
            stats_after.pending, 0,
            "{}: the event was accepted",
            db.backend
        );

        // A redelivery (as after a crash before the outbox row was marked) sends nothing new.
        let event = cleave_kernel::events::Event {
            id: event_id,
            topic: "checkout.order_placed".into(),
            payload: serde_json_string(&placed(&order_id)),
            request_id: "r".into(),
            created_at_ms: 0,
            traceparent: None,
        };
        bus.publish(&event).await.expect("redeliver");

        let sent = module
            .list_confirmations(&CallContext::root(), order_id.clone())
            .await
            .expect("list");
        assert_eq!(sent.len(), 1, "{}: one confirmation", db.backend);
        assert_eq!(sent[0].message_id, event_id.to_string());
        let file = std::fs::read_to_string(dir.path().join(format!("{event_id}.txt")))
            .expect("mail file written");
        assert!(file.contains("To: someone@example.com"), "{file}");
        assert!(file.contains("XY-00001-0000001"), "{file}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}

#[tokio::test]
async fn an_event_stays_pending_while_nobody_in_the_process_subscribes() {
    for db in test_databases().await {
        let conn = db.connect().await;
        cleave_migrations::events::Migrator::up(&conn, None)
            .await
            .expect("migrate outbox");
        enqueue(&conn, &CallContext::root(), &placed("o-lonely"))
            .await
            .expect("enqueue");
        let bus = InProcessBus::new();
        relay_pass(&conn, bus.as_ref(), RelaySettings::default())
            .await
            .expect("relay");
        assert_eq!(
            stats(&conn).await.expect("stats").pending,
            1,
            "{}",
            db.backend
        );
    }
}

fn serde_json_string(value: &OrderPlaced) -> String {
    serde_json::to_string(value).expect("json")
}

#[tokio::test]
async fn overlapping_deliveries_whose_sending_fails_record_nothing_and_none_reports_success() {
    for db in test_databases().await {
        // A "directory" that is a file: every message fails to be written.
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("not-a-directory");
        std::fs::write(&not_a_dir, "").expect("file");
        let broken = start(
            &db,
            &EmailConfig {
                transport: MailTransport::File,
                dir: not_a_dir,
            },
        )
        .await;
        let order_id = format!("o-{}", uuid::Uuid::now_v7());
        let req = email::confirmation_for(&uuid::Uuid::now_v7().to_string(), &placed(&order_id));
        let sends = (0..8).map(|_| {
            let (module, req) = (broken.clone(), req.clone());
            tokio::spawn(async move {
                module
                    .send_order_confirmation(&CallContext::root(), req)
                    .await
            })
        });
        for send in sends.collect::<Vec<_>>() {
            let result = send.await.expect("task");
            // One delivery finding another's row must not take it for sent.
            assert!(result.is_err(), "{}: {result:?}", db.backend);
        }
        let recorded = broken
            .list_confirmations(&CallContext::root(), order_id.clone())
            .await
            .expect("list");
        assert!(recorded.is_empty(), "{}: {recorded:?}", db.backend);
        // With a working transport the next delivery sends it, once.
        let mail = tempfile::tempdir().expect("tempdir");
        let working = start(
            &db,
            &EmailConfig {
                transport: MailTransport::File,
                dir: mail.path().to_path_buf(),
            },
        )
        .await;
        working
            .send_order_confirmation(&CallContext::root(), req.clone())
            .await
            .expect("sent");
        assert_eq!(std::fs::read_dir(mail.path()).expect("dir").count(), 1);
    }
}

/// Records the events delivered to it, in the order they arrive, each after taking `.1` to
/// handle it (a slow subscriber; zero: at once).
#[derive(Default)]
struct Arrivals(std::sync::Mutex<Vec<uuid::Uuid>>, std::time::Duration);

#[async_trait::async_trait]
impl cleave_kernel::events::Subscriber for Arrivals {
    async fn handle(
        &self,
        event: &cleave_kernel::events::Event,
    ) -> Result<(), cleave_kernel::events::EventError> {
        if !self.1.is_zero() {
            tokio::time::sleep(self.1).await;
        }
        self.0.lock().expect("lock").push(event.id);
        // Lets relays running at once interleave.
        tokio::task::yield_now().await;
        Ok(())
    }
}

/// An outbox holding `n` `OrderPlaced` events (orders `<prefix>-0`...), and a bus whose
/// subscriber records their deliveries.
struct Outbox {
    conn: sea_orm::DatabaseConnection,
    /// The events' ids, oldest first.
    ids: Vec<uuid::Uuid>,
    bus: Arc<InProcessBus>,
    arrivals: Arc<Arrivals>,
}

impl Outbox {
    /// Events delivered to a subscriber taking `handling` for each.
    async fn with_orders(
        db: &TestDb,
        prefix: &str,
        n: usize,
        handling: std::time::Duration,
    ) -> Self {
        // The outbox's tables (through the email module's start).
        let _ = start(db, &EmailConfig::default()).await;
        let conn = db.connect().await;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                enqueue(
                    &conn,
                    &CallContext::root(),
                    &placed(&format!("{prefix}-{i}")),
                )
                .await
                .expect("enqueue"),
            );
        }
        let arrivals = Arc::new(Arrivals(std::sync::Mutex::default(), handling));
        let bus = InProcessBus::new();
        bus.subscribe("checkout.order_placed", "arrivals", arrivals.clone());
        Self {
            conn,
            ids,
            bus,
            arrivals,
        }
    }
}

#[tokio::test]
async fn a_relay_pass_takes_the_oldest_due_events_up_to_its_batch_and_delivers_them_in_order() {
    for db in test_databases().await {
        let outbox = Outbox::with_orders(&db, "batch", 5, std::time::Duration::ZERO).await;
        let settings = RelaySettings {
            batch_size: 2,
            ..RelaySettings::default()
        };
        let mut full = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..3 {
            full.push(
                relay_pass(&outbox.conn, outbox.bus.as_ref(), settings)
                    .await
                    .expect("pass"),
            );
            seen.push(outbox.arrivals.0.lock().expect("lock").len());
        }
        assert_eq!(
            full,
            [true, true, false],
            "{}: a full batch says more may wait",
            db.backend
        );
        assert_eq!(seen, [2, 4, 5], "{}: at most a batch a pass", db.backend);
        assert_eq!(
            *outbox.arrivals.0.lock().expect("lock"),
            outbox.ids,
            "{}: oldest first",
            db.backend
        );
        let left = stats(&outbox.conn).await.expect("stats");
        assert_eq!((left.pending, left.published), (0, 5), "{}", db.backend);
    }
}

#[tokio::test]
async fn a_pass_that_ran_half_its_lease_gives_the_events_it_has_not_tried_back() {
    for db in test_databases().await {
        // Each delivery takes 30 ms, half the lease is 20 ms: the first event is published,
        // then the pass stops and gives the other two back, due at once.
        let outbox =
            Outbox::with_orders(&db, "slow", 3, std::time::Duration::from_millis(30)).await;
        let settings = RelaySettings {
            lease: std::time::Duration::from_millis(40),
            ..RelaySettings::default()
        };
        let more = relay_pass(&outbox.conn, outbox.bus.as_ref(), settings)
            .await
            .expect("pass");
        assert!(more, "{}: events were given back", db.backend);
        assert_eq!(
            *outbox.arrivals.0.lock().expect("lock"),
            outbox.ids[..1],
            "{}",
            db.backend
        );
        let left = stats(&outbox.conn).await.expect("stats");
        assert_eq!((left.pending, left.published), (2, 1), "{}", db.backend);
        // Given back means due now: the next pass (another relay's, or this one's) takes them.
        let settings = RelaySettings::default();
        relay_pass(&outbox.conn, outbox.bus.as_ref(), settings)
            .await
            .expect("pass");
        assert_eq!(
            *outbox.arrivals.0.lock().expect("lock"),
            outbox.ids,
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn relays_sharing_a_database_deliver_each_event_once_and_published_rows_are_pruned() {
    for db in test_databases().await {
        let Outbox {
            conn,
            ids,
            bus,
            arrivals,
        } = Outbox::with_orders(&db, "relay", 60, std::time::Duration::ZERO).await;
        // Four relays (as four processes would) on the same outbox, at once.
        let settings = RelaySettings {
            batch_size: 1000,
            ..RelaySettings::default()
        };
        let relays = (0..4).map(|_| {
            let (conn, bus) = (conn.clone(), bus.clone());
            tokio::spawn(async move { relay_pass(&conn, bus.as_ref(), settings).await })
        });
        for relay in relays.collect::<Vec<_>>() {
            relay.await.expect("task").expect("pass");
        }
        let arrived = arrivals.0.lock().expect("lock").clone();
        for id in &ids {
            let times = arrived.iter().filter(|a| *a == id).count();
            assert_eq!(times, 1, "{}: event {id}", db.backend);
        }
        assert_eq!(stats(&conn).await.expect("stats").pending, 0);
        // Published rows go once they are older than the retention; pending ones stay.
        let pending = enqueue(&conn, &CallContext::root(), &placed("relay-late"))
            .await
            .expect("enqueue");
        let pruned = cleave_kernel::events::prune(&conn, i64::MAX)
            .await
            .expect("prune");
        assert_eq!(pruned, 60, "{}", db.backend);
        let left = stats(&conn).await.expect("stats");
        assert_eq!(
            (left.pending, left.published),
            (1, 0),
            "{}: {pending}",
            db.backend
        );
    }
}
