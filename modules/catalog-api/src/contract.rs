//! The catalog contract suite: what every [`CatalogApi`] must do, whether it is the module in
//! process, the HTTP client talking to it, or the fake. Assumes the seeded catalog.

use cleave_domain::ProductId;
use cleave_kernel::CallContext;
use cleave_kernel::testing::refusal;

use crate::{CatalogApi, CatalogError, MAX_QUERY_CHARS, Product};

pub use cleave_domain::BOUTIQUE_PRODUCT_IDS as BOUTIQUE_IDS;

fn id(raw: &str) -> ProductId {
    ProductId::parse(raw).expect("valid id")
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
pub async fn run(label: &str, api: &dyn CatalogApi) {
    let ctx = CallContext::root();

    // list_products: holds at least the Boutique ids, ordered by id, each with a USD price.
    let all = api.list_products(&ctx).await.expect("list_products");
    for want in BOUTIQUE_IDS {
        assert!(
            all.iter().any(|p| p.id.as_str() == want),
            "[{label}] list lacks {want}"
        );
    }
    let ids: Vec<_> = all.iter().map(|p| p.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "[{label}] list is ordered by id");
    for p in &all {
        assert_eq!(
            p.price_usd.currency_code, "USD",
            "[{label}] {} priced in USD",
            p.id
        );
        p.price_usd.validate().expect("valid money");
        assert!(
            !p.categories.is_empty(),
            "[{label}] {} has categories",
            p.id
        );
    }

    // get_product: the product with its real price; unknown ids are not found.
    let watch = api
        .get_product(&ctx, id("1YMWWN1N4O"))
        .await
        .expect("get watch");
    assert_eq!(watch.id.as_str(), "1YMWWN1N4O");
    assert_eq!(
        (watch.price_usd.units, watch.price_usd.nanos),
        (109, 990_000_000),
        "[{label}]"
    );
    assert_eq!(
        watch.categories,
        vec!["accessories".to_owned()],
        "[{label}]"
    );
    let jar = api
        .get_product(&ctx, id("9SIQT8TOJO"))
        .await
        .expect("get jar");
    assert_eq!(
        (jar.price_usd.units, jar.price_usd.nanos),
        (5, 490_000_000),
        "[{label}]"
    );
    match api.get_product(&ctx, id("NOPE000000")).await {
        Err(CatalogError::ProductNotFound { id }) => assert_eq!(id, "NOPE000000", "[{label}]"),
        other => panic!("[{label}] unknown id gave {other:?}"),
    }

    // search_products: case-insensitive on name, blank matches all, no match is empty.
    let found = api
        .search_products(&ctx, "sUnGlAsSeS".into())
        .await
        .expect("search");
    assert!(
        found.iter().any(|p| p.id.as_str() == "OLJCESPC7Z"),
        "[{label}] search by name"
    );
    assert!(found.iter().all(|p| {
        let q = "sunglasses";
        p.name.to_lowercase().contains(q) || p.description.to_lowercase().contains(q)
    }));
    let kitchen_word = api
        .search_products(&ctx, "MUG".into())
        .await
        .expect("search mug");
    assert!(
        kitchen_word.iter().any(|p| p.id.as_str() == "6E92ZMYYFZ"),
        "[{label}] mug"
    );
    let blank = api
        .search_products(&ctx, "  ".into())
        .await
        .expect("blank search");
    assert_eq!(
        blank.len(),
        all.len(),
        "[{label}] blank query matches everything"
    );
    let none = api
        .search_products(&ctx, "no such thing at all".into())
        .await
        .expect("search");
    assert!(none.is_empty(), "[{label}] no match is empty");
    let wild = api
        .search_products(&ctx, "%".into())
        .await
        .expect("search %");
    assert!(wild.is_empty(), "[{label}] % is a literal, not a wildcard");
    match api
        .search_products(&ctx, "x".repeat(MAX_QUERY_CHARS + 1))
        .await
    {
        Err(CatalogError::InvalidQuery { .. }) => {}
        other => panic!("[{label}] over-long query gave {other:?}"),
    }
}

/// Product management: only `admin` (a context with the admin role) may save and remove
/// products; `shopper` (signed in, no role) and anonymous callers are refused. Uses a fresh
/// product id, so it can run against a shared catalog.
pub async fn run_admin(
    label: &str,
    api: &dyn CatalogApi,
    admin: &CallContext,
    shopper: &CallContext,
) {
    use cleave_domain::Money;

    let id = ProductId::parse(format!(
        "T-{}",
        CallContext::root().request_id().as_str().replace('-', "")
    ))
    .expect("id");
    let product = Product {
        id: id.clone(),
        name: "Test Teapot".into(),
        description: "Short and stout.".into(),
        picture: "/static/img/products/teapot.svg".into(),
        price_usd: Money::new("USD", 24, 500_000_000).expect("money"),
        categories: vec!["kitchen".into()],
    };
    let anonymous = api
        .upsert_product(&CallContext::root(), product.clone())
        .await;
    assert_eq!(refusal(&anonymous), Some(401), "[{label}] {anonymous:?}");
    let shoppers = api.upsert_product(shopper, product.clone()).await;
    assert_eq!(refusal(&shoppers), Some(403), "[{label}] {shoppers:?}");
    let mut nameless = product.clone();
    nameless.name = " ".into();
    match api.upsert_product(admin, nameless).await {
        Err(CatalogError::InvalidProduct { detail }) => {
            assert!(detail.contains("name"), "[{label}]")
        }
        other => panic!("[{label}] nameless product gave {other:?}"),
    }
    let mut negative = product.clone();
    negative.price_usd = Money::new("USD", -1, 0).expect("money");
    assert!(
        matches!(
            api.upsert_product(admin, negative).await,
            Err(CatalogError::InvalidProduct { .. })
        ),
        "[{label}] a negative price is refused"
    );
    assert!(
        matches!(
            api.get_product(admin, id.clone()).await,
            Err(CatalogError::ProductNotFound { .. })
        ),
        "[{label}] nothing was saved by the refused calls"
    );

    let saved = api
        .upsert_product(admin, product.clone())
        .await
        .expect("save");
    assert_eq!(saved, product, "[{label}]");
    assert_eq!(
        api.get_product(shopper, id.clone()).await.expect("get"),
        product,
        "[{label}]"
    );
    assert!(
        api.list_products(shopper)
            .await
            .expect("list")
            .contains(&product),
        "[{label}] listed"
    );
    let mut cheaper = product.clone();
    cheaper.price_usd = Money::new("USD", 19, 990_000_000).expect("money");
    api.upsert_product(admin, cheaper.clone())
        .await
        .expect("update");
    assert_eq!(
        api.get_product(shopper, id.clone()).await.expect("get"),
        cheaper,
        "[{label}] replaced"
    );

    let shoppers = api.delete_product(shopper, id.clone()).await;
    assert_eq!(refusal(&shoppers), Some(403), "[{label}] {shoppers:?}");
    api.delete_product(admin, id.clone()).await.expect("delete");
    assert!(
        matches!(
            api.get_product(admin, id.clone()).await,
            Err(CatalogError::ProductNotFound { .. })
        ),
        "[{label}] removed"
    );
    match api.delete_product(admin, id).await {
        Err(CatalogError::ProductNotFound { .. }) => {}
        other => panic!("[{label}] deleting twice gave {other:?}"),
    }
}
