//! The recommendation contract suite. Assumes a catalog holding exactly the nine Online
//! Boutique products (a freshly seeded catalog, or `catalog_api::fake::FakeCatalog`).

use cleave_domain::{ProductId, UserId};
use cleave_kernel::CallContext;

use crate::{MAX_INPUT_PRODUCTS, MAX_RESULTS, RecommendationApi, RecommendationError};

use cleave_domain::BOUTIQUE_PRODUCT_IDS as CATALOG;

fn pids(raw: &[&str]) -> Vec<ProductId> {
    raw.iter()
        .map(|r| ProductId::parse(*r).expect("valid id"))
        .collect()
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).expect("valid user")
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
pub async fn run(label: &str, api: &dyn RecommendationApi) {
    let ctx = CallContext::root();

    let got = api
        .list_recommendations(&ctx, user("u1"), pids(&["OLJCESPC7Z"]))
        .await
        .expect("recommendations");
    assert_eq!(
        got.len(),
        MAX_RESULTS,
        "[{label}] 8 candidates give {MAX_RESULTS}"
    );
    assert!(
        !got.iter().any(|p| p.as_str() == "OLJCESPC7Z"),
        "[{label}] not the input"
    );
    assert!(
        got.iter().all(|p| CATALOG.contains(&p.as_str())),
        "[{label}] from the catalog"
    );
    let mut distinct = got.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), got.len(), "[{label}] no repeats");

    let again = api
        .list_recommendations(&ctx, user("u1"), pids(&["OLJCESPC7Z"]))
        .await
        .expect("again");
    assert_eq!(
        again, got,
        "[{label}] stable for the same user and products"
    );

    let all = api
        .list_recommendations(&ctx, user("u1"), pids(&CATALOG))
        .await
        .expect("all");
    assert!(all.is_empty(), "[{label}] nothing left to recommend");

    let seven = api
        .list_recommendations(&ctx, user("u2"), pids(&CATALOG[..7]))
        .await
        .expect("seven");
    assert_eq!(seven.len(), 2, "[{label}] only two others exist");

    let none = api
        .list_recommendations(&ctx, user("u3"), vec![])
        .await
        .expect("no input");
    assert_eq!(
        none.len(),
        MAX_RESULTS,
        "[{label}] no input still recommends"
    );

    let unknown = api
        .list_recommendations(&ctx, user("u3"), pids(&["UNKNOWN123"]))
        .await
        .expect("unknown input");
    assert_eq!(
        unknown.len(),
        MAX_RESULTS,
        "[{label}] unknown ids are ignored"
    );

    let many: Vec<ProductId> = (0..=MAX_INPUT_PRODUCTS)
        .map(|i| ProductId::parse(format!("P{i}")).expect("id"))
        .collect();
    match api.list_recommendations(&ctx, user("u4"), many).await {
        Err(RecommendationError::TooManyProducts { max }) => {
            assert_eq!(max, MAX_INPUT_PRODUCTS, "[{label}]");
        }
        other => panic!("[{label}] too many products gave {other:?}"),
    }
}
