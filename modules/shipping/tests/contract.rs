//! The shipping contract suite against the module in process and over HTTP, and shipments
//! surviving a restart.

use std::sync::Arc;

use cleave_domain::{Address, ProductId};
use cleave_kernel::CallContext;
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, TestKeys, test_databases};
use cleave_migrations::shipping::Migrator;
use shipping::ShippingModule;
use shipping_api::{ShipOrderRequest, ShippingApi, ShippingError, ShippingItem, contract};

fn harness() -> ContractHarness<ShippingModule> {
    ContractHarness::new::<Migrations<Migrator>>()
}

async fn start(db: &TestDb) -> Arc<dyn ShippingApi> {
    harness().start(db, &TestKeys::new()).await
}

fn order() -> ShipOrderRequest {
    ShipOrderRequest {
        address: Address {
            street_address: "Kurfürstendamm 21".into(),
            city: "Berlin".into(),
            state: String::new(),
            country: "Germany".into(),
            zip_code: "10719".into(),
        },
        items: vec![ShippingItem {
            product_id: ProductId::parse("9SIQT8TOJO").expect("product id"),
            quantity: 4,
        }],
    }
}

#[tokio::test]
async fn shipping_meets_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move {
            contract::run(&p.label, p.api.as_ref(), &p.as_user("ops", &["admin"])).await
        })
        .await;
}

#[tokio::test]
async fn a_shipment_survives_a_restart_of_the_module() {
    for db in test_databases().await {
        let ctx = CallContext::root();
        let first = start(&db).await;
        let shipped = first.ship_order(&ctx, order()).await.expect("ship");
        drop(first);

        // A new module instance over a new connection (migrating again changes nothing).
        let second = start(&db).await;
        let read = second
            .get_shipment(&ctx, shipped.tracking_id.clone())
            .await
            .expect("read back");
        assert_eq!(
            read, shipped,
            "{}: the shipment is stored as returned",
            db.backend
        );
        assert_eq!(
            read.address.state, "",
            "{}: an empty state stays empty",
            db.backend
        );
        assert_eq!(
            read.address.street_address, "Kurfürstendamm 21",
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_refused_order_stores_nothing() {
    for db in test_databases().await {
        let ctx = CallContext::root();
        let module = start(&db).await;
        let mut bad = order();
        bad.items[0].quantity = 0;
        assert!(
            matches!(
                module.ship_order(&ctx, bad).await,
                Err(ShippingError::InvalidQuantity { .. })
            ),
            "{}",
            db.backend
        );
        let count = count_rows(&db).await;
        assert_eq!(count, 0, "{}: nothing was stored", db.backend);
        module.ship_order(&ctx, order()).await.expect("ship");
        assert_eq!(
            count_rows(&db).await,
            1,
            "{}: one shipment stored",
            db.backend
        );
    }
}

async fn count_rows(db: &TestDb) -> i64 {
    let conn = db.connect().await;
    cleave_kernel::testing::count(&conn, "SELECT COUNT(*) AS n FROM shipping_shipments").await
}
