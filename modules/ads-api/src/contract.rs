//! The ads contract suite: what every [`AdsApi`] must do. Assumes the seeded ads: one per
//! Online Boutique product, filed under the product's first category.

use std::collections::BTreeSet;

use cleave_kernel::CallContext;
use cleave_kernel::testing::refusal;

use crate::{
    Ad, Ads, AdsApi, AdsError, AdsRequest, MAX_ADS, MAX_CONTEXT_KEYS, MAX_KEY_CHARS,
    MAX_MATCHED_ADS,
};

use cleave_domain::BOUTIQUE_PRODUCT_IDS as CATALOG;

fn request(keys: &[&str]) -> AdsRequest {
    AdsRequest {
        context_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// The product an ad redirects to.
fn product(label: &str, ad: &Ad) -> String {
    ad.redirect_url
        .strip_prefix("/product/")
        .unwrap_or_else(|| panic!("[{label}] {ad:?} does not redirect into /product/<id>"))
        .to_owned()
}

fn products(label: &str, ads: &Ads) -> Vec<String> {
    ads.ads.iter().map(|ad| product(label, ad)).collect()
}

async fn get(label: &str, api: &dyn AdsApi, keys: &[&str]) -> Ads {
    api.get_ads(&CallContext::root(), request(keys))
        .await
        .unwrap_or_else(|e| panic!("[{label}] get_ads({keys:?}): {e:?}"))
}

/// Checks an answer to keys that match nothing: exactly [`MAX_ADS`] distinct seeded ads.
fn assert_random(label: &str, ads: &Ads, keys: &[&str]) {
    assert_eq!(
        ads.ads.len(),
        MAX_ADS,
        "[{label}] {keys:?} serves {MAX_ADS} random ads"
    );
    let ids = products(label, ads);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "[{label}] {keys:?}: no repeats");
    for (ad, id) in ads.ads.iter().zip(&ids) {
        assert!(
            CATALOG.contains(&id.as_str()),
            "[{label}] {ad:?} points at a seeded product"
        );
        assert!(!ad.text.trim().is_empty(), "[{label}] {ad:?} has a text");
    }
}

/// Runs every case against `api`. `label` names the implementation in failure messages.
pub async fn run(label: &str, api: &dyn AdsApi) {
    let ctx = CallContext::root();

    // A category key returns exactly the ads of that category.
    let clothing = get(label, api, &["clothing"]).await;
    assert_eq!(
        products(label, &clothing),
        vec!["66VCHSJNUP".to_owned()],
        "[{label}] clothing is the tank top"
    );
    assert!(!clothing.ads[0].text.trim().is_empty(), "[{label}]");

    let kitchen = get(label, api, &["kitchen"]).await;
    let kitchen_ids: BTreeSet<String> = products(label, &kitchen).into_iter().collect();
    assert_eq!(
        kitchen_ids,
        BTreeSet::from(["6E92ZMYYFZ", "9SIQT8TOJO", "LS4PSXUNUM"].map(String::from)),
        "[{label}] kitchen is the mug, the jar and the shakers"
    );
    assert_eq!(kitchen.ads.len(), 3, "[{label}] each kitchen ad once");
    assert_eq!(
        get(label, api, &["kitchen"]).await,
        kitchen,
        "[{label}] matched ads are not shuffled"
    );

    // Keys are trimmed and compared ignoring case; repeated keys add nothing.
    assert_eq!(get(label, api, &["KITCHEN "]).await, kitchen, "[{label}]");
    assert_eq!(
        get(label, api, &["kitchen", " Kitchen", "kitchen"]).await,
        kitchen,
        "[{label}] repeated keys"
    );
    // One matching key is enough; the others are ignored.
    assert_eq!(
        get(label, api, &["nothing-matches", "kitchen"]).await,
        kitchen,
        "[{label}]"
    );

    // Several categories: ordered by category, then within the category as alone.
    let both = get(label, api, &["kitchen", "clothing"]).await;
    let mut want = clothing.ads.clone();
    want.extend(kitchen.ads.iter().cloned());
    assert_eq!(both.ads, want, "[{label}] clothing before kitchen");

    // At most MAX_MATCHED_ADS: accessories (2) and clothing (1) come before kitchen (3).
    let many = get(label, api, &["kitchen", "accessories", "clothing"]).await;
    let many_ids = products(label, &many);
    assert_eq!(many_ids.len(), MAX_MATCHED_ADS, "[{label}] capped");
    let accessories: BTreeSet<&str> = many_ids[..2].iter().map(String::as_str).collect();
    assert_eq!(
        accessories,
        BTreeSet::from(["1YMWWN1N4O", "OLJCESPC7Z"]),
        "[{label}] the watch and the sunglasses first"
    );
    assert_eq!(many_ids[2], "66VCHSJNUP", "[{label}] then the tank top");
    assert_eq!(
        &many.ads[3..],
        &kitchen.ads[..MAX_MATCHED_ADS - 3],
        "[{label}] then kitchen ads up to the cap"
    );

    // No match, or no keys: MAX_ADS random, distinct ads.
    assert_random(
        label,
        &get(label, api, &["nothing-matches"]).await,
        &["nothing-matches"],
    );
    assert_random(label, &get(label, api, &[]).await, &[]);
    let longest = "a".repeat(MAX_KEY_CHARS);
    assert_random(
        label,
        &get(label, api, &[longest.as_str()]).await,
        &["<longest key>"],
    );
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        seen.insert(products(label, &get(label, api, &[]).await));
    }
    // 36 possible pairs: 30 identical draws would mean the choice is not random.
    assert!(seen.len() > 1, "[{label}] random ads vary between calls");

    // Exactly MAX_CONTEXT_KEYS keys are fine; one more is refused.
    let keys: Vec<String> = (0..=MAX_CONTEXT_KEYS).map(|i| format!("k{i}")).collect();
    let at_limit = AdsRequest {
        context_keys: keys[..MAX_CONTEXT_KEYS].to_vec(),
    };
    let ads = api.get_ads(&ctx, at_limit).await.expect("20 keys");
    assert_eq!(
        ads.ads.len(),
        MAX_ADS,
        "[{label}] unmatched keys at the limit"
    );
    match api.get_ads(&ctx, AdsRequest { context_keys: keys }).await {
        Err(AdsError::TooManyKeys { max }) => assert_eq!(max, MAX_CONTEXT_KEYS, "[{label}]"),
        other => panic!("[{label}] {} keys gave {other:?}", MAX_CONTEXT_KEYS + 1),
    }

    // Malformed keys are refused, whatever the other keys are.
    let too_long = "a".repeat(MAX_KEY_CHARS + 1);
    for bad in ["bad<key>", too_long.as_str(), "", "   ", "a,b", "caf\u{e9}"] {
        match api.get_ads(&ctx, request(&["kitchen", bad])).await {
            Err(AdsError::InvalidContextKey { detail }) => {
                assert!(!detail.is_empty(), "[{label}] {bad:?} explained");
            }
            other => panic!("[{label}] key {bad:?} gave {other:?}"),
        }
    }
}

/// Ad management: only `admin` may save and remove ads; `shopper` and anonymous callers are
/// refused. A saved ad is served for its category at once. Uses a fresh ad id and category.
pub async fn run_admin(label: &str, api: &dyn AdsApi, admin: &CallContext, shopper: &CallContext) {
    use crate::{AdDefinition, AdsError};

    let suffix = CallContext::root().request_id().as_str().replace('-', "");
    let id = format!("test-{}", &suffix[suffix.len() - 12..]);
    let category = format!("cat{}", &suffix[suffix.len() - 8..]);
    let ad = AdDefinition {
        category: category.clone(),
        redirect_url: "/product/6E92ZMYYFZ".into(),
        text: "Mugs for the whole team.".into(),
    };
    let anonymous = api
        .put_ad(&CallContext::root(), id.clone(), ad.clone())
        .await;
    assert_eq!(refusal(&anonymous), Some(401), "[{label}] {anonymous:?}");
    let shoppers = api.put_ad(shopper, id.clone(), ad.clone()).await;
    assert_eq!(refusal(&shoppers), Some(403), "[{label}] {shoppers:?}");
    let mut offsite = ad.clone();
    offsite.redirect_url = "https://evil.example/".into();
    match api.put_ad(admin, id.clone(), offsite).await {
        Err(AdsError::InvalidAd { detail }) => {
            assert!(detail.contains("redirect_url"), "[{label}]")
        }
        other => panic!("[{label}] an off-site redirect gave {other:?}"),
    }
    let saved = api
        .put_ad(admin, id.clone(), ad.clone())
        .await
        .expect("save");
    assert_eq!(saved, ad, "[{label}]");
    let served = ads_for(api, &category).await;
    assert_eq!(served.len(), 1, "[{label}] served for its category");
    assert_eq!(served[0].text, ad.text, "[{label}]");
    let shoppers = api.delete_ad(shopper, id.clone()).await;
    assert_eq!(refusal(&shoppers), Some(403), "[{label}] {shoppers:?}");
    api.delete_ad(admin, id.clone()).await.expect("delete");
    assert!(
        ads_for(api, &category)
            .await
            .iter()
            .all(|a| a.text != ad.text),
        "[{label}] no longer served"
    );
    match api.delete_ad(admin, id).await {
        Err(AdsError::AdNotFound { .. }) => {}
        other => panic!("[{label}] deleting twice gave {other:?}"),
    }
}

async fn ads_for(api: &dyn AdsApi, category: &str) -> Vec<crate::Ad> {
    api.get_ads(
        &CallContext::root(),
        AdsRequest {
            context_keys: vec![category.to_owned()],
        },
    )
    .await
    .expect("ads")
    .ads
}
