//! The cart contract suite against the module in process and over HTTP.

use std::sync::Arc;

use cart::{CartConfig, CartDeps, CartModule};
use cart_api::{CartApi, contract};
use cleave_kernel::events::Relay;
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, test_databases};
use cleave_migrations::cart::Migrator;

fn harness() -> ContractHarness<CartModule> {
    ContractHarness::new::<Migrations<Migrator>>()
        .with_migrations::<Migrations<cleave_migrations::events::Migrator>>()
}

async fn start(db: &TestDb) -> Arc<CartModule> {
    let conn = harness().migrated(db).await;
    CartModule::new(conn, &CartConfig::default(), CartDeps, Relay::disabled())
}

#[tokio::test]
async fn cart_meets_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move { contract::run(&p).await })
        .await;
}

#[tokio::test]
async fn concurrent_adds_to_one_line_are_all_counted() {
    use cleave_domain::{ProductId, UserId};
    use cleave_kernel::CallContext;

    for db in test_databases().await {
        let module = start(&db).await;
        let user = UserId::parse("concurrent-user").expect("user");
        let product = ProductId::parse("6E92ZMYYFZ").expect("product");
        let adds = (0..20).map(|_| {
            let (module, user, product) = (module.clone(), user.clone(), product.clone());
            tokio::spawn(async move {
                module
                    .add_item(&CallContext::root(), user, product, 1)
                    .await
            })
        });
        for result in futures_join(adds).await {
            result.expect("task").expect("add");
        }
        let cart = module
            .get_cart(&CallContext::root(), user)
            .await
            .expect("cart");
        assert_eq!(cart.items.len(), 1, "{}", db.backend);
        assert_eq!(
            cart.items[0].quantity, 20,
            "{}: every add counted",
            db.backend
        );
    }
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await);
    }
    out
}

#[tokio::test]
async fn concurrent_adds_of_new_products_never_exceed_the_line_limit() {
    use cart_api::{CartError, MAX_LINES};
    use cleave_domain::{ProductId, UserId};
    use cleave_kernel::CallContext;

    for db in test_databases().await {
        let module = start(&db).await;
        let user = UserId::parse("crowded-cart").expect("user");
        let extra = 10;
        let adds: Vec<_> = (0..MAX_LINES + extra)
            .map(|i| {
                let (module, user) = (module.clone(), user.clone());
                let product = ProductId::parse(format!("P{i:04}")).expect("product");
                tokio::spawn(async move {
                    module
                        .add_item(&CallContext::root(), user, product, 1)
                        .await
                })
            })
            .collect();
        let mut refused = 0;
        for add in adds {
            match add.await.expect("task") {
                Ok(_) => {}
                Err(CartError::TooManyItems { .. }) => refused += 1,
                Err(other) => panic!("{}: {other:?}", db.backend),
            }
        }
        let cart = module
            .get_cart(&CallContext::root(), user)
            .await
            .expect("cart");
        assert_eq!(
            cart.items.len(),
            MAX_LINES,
            "{}: the limit holds under concurrency",
            db.backend
        );
        assert_eq!(refused, extra, "{}", db.backend);
    }
}

/// A cart read is kept for readers that say a kept answer will do (a page header's count)
/// until the module changes it or a `cart.changed` from elsewhere says it changed; a read
/// without that word always reads the database. Changes "made elsewhere" are made here
/// behind the module's back, in SQL, as another process on the same database would.
#[tokio::test]
async fn a_kept_cart_is_read_until_a_change_drops_it() {
    use cart::CartConfig;
    use cart_api::{Cart, CartChanged};
    use cleave_domain::{ProductId, UserId};
    use cleave_kernel::CallContext;
    use cleave_kernel::events::{Event, Topic};
    use cleave_kernel::module::Assembly;
    use sea_orm::ConnectionTrait;

    for db in test_databases().await {
        let conn = harness().migrated(&db).await;
        let mut asm = Assembly::standalone(Some(conn.clone()));
        let module = asm
            .start::<CartModule>(CartConfig { keep_ms: 600_000 })
            .await
            .expect("start");
        let backend = db.backend;
        let user =
            UserId::parse(format!("kept-{}", CallContext::root().request_id())).expect("user");
        let (fresh, kept) = (
            CallContext::root(),
            CallContext::root().kept_answer_will_do(),
        );
        let units = |cart: Cart| cart.items.iter().map(|i| i.quantity).sum::<i64>();
        let elsewhere = |sql: String| {
            let conn = conn.clone();
            async move { conn.execute_unprepared(&sql).await.expect(&sql) }
        };
        let insert = |product: &str, quantity: i32| {
            format!(
                "INSERT INTO cart_items (user_id, product_id, quantity) \
                 VALUES ('{user}', '{product}', {quantity})"
            )
        };

        let read = async |ctx: &CallContext| {
            units(module.get_cart(ctx, user.clone()).await.expect("read"))
        };
        assert_eq!(read(&kept).await, 0, "{backend}");
        elsewhere(insert("OLJCESPC7Z", 3)).await;
        assert_eq!(read(&kept).await, 0, "{backend}: the kept cart");
        assert_eq!(
            read(&fresh).await,
            3,
            "{backend}: a fresh read asks the database"
        );
        assert_eq!(read(&kept).await, 3, "{backend}: and keeps what it read");

        elsewhere(insert("66VCHSJNUP", 1)).await;
        module
            .add_item(
                &fresh,
                user.clone(),
                ProductId::parse("OLJCESPC7Z").expect("id"),
                1,
            )
            .await
            .expect("add");
        assert_eq!(
            read(&kept).await,
            5,
            "{backend}: its own change dropped the kept cart"
        );

        elsewhere(format!("DELETE FROM cart_items WHERE user_id = '{user}'")).await;
        assert_eq!(read(&kept).await, 5, "{backend}: kept");
        let announced = Event {
            id: uuid::Uuid::now_v7(),
            topic: CartChanged::TOPIC.to_owned(),
            payload: serde_json::to_string(&CartChanged::of(&user)).expect("payload"),
            request_id: "elsewhere".into(),
            created_at_ms: 1,
            traceparent: None,
        };
        asm.bus().publish(&announced).await.expect("delivered");
        assert_eq!(
            read(&kept).await,
            0,
            "{backend}: the announced change dropped it"
        );
    }
}
