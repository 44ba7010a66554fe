//! The `recommendation` module: suggests other catalog products.
//!
//! - Owns: nothing.
//! - Provides: [`recommendation_api::RecommendationApi`] through [`RecommendationModule`].
//! - Requires: `catalog` (through [`catalog_api::CatalogApi`] only).
//!
//! Like Boutique's service it picks at random among the other products, but the randomness is
//! seeded by the user and the products asked about: the same page shows the same suggestions
//! on reload, and the answer is the same whichever process computes it.

use cleave_kernel::module;
use cleave_kernel::module::{ModuleConfig, Start, StartError};
use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use catalog_api::CatalogApi;
use cleave_domain::{ProductId, UserId};
use cleave_kernel::{ApiError, CallContext};
use recommendation_api::{MAX_RESULTS, RecommendationApi, RecommendationError, validate_input};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.recommendation]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecommendationConfig {
    /// How many products to recommend, 1 to 5.
    pub max_results: usize,
}

impl Default for RecommendationConfig {
    fn default() -> Self {
        Self {
            max_results: MAX_RESULTS,
        }
    }
}

impl ModuleConfig for RecommendationConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_RESULTS).contains(&self.max_results) {
            return Err((
                "max_results",
                format!("must be between 1 and {MAX_RESULTS}"),
            ));
        }
        Ok(())
    }
}

/// The modules recommendation calls.
#[derive(Clone)]
pub struct RecommendationDeps {
    /// The catalog, local or remote.
    pub catalog: Arc<dyn CatalogApi>,
}

/// The recommendation module, in process.
#[module(contract = recommendation_api::RecommendationContract, config = RecommendationConfig,
    owns = "nothing (reads the catalog)", requires = ["catalog"], validates)]
pub struct RecommendationModule {
    max_results: usize,
    catalog: Arc<dyn CatalogApi>,
}

impl RecommendationModule {
    /// The module over its dependencies.
    pub fn new(config: &RecommendationConfig, deps: RecommendationDeps) -> Arc<Self> {
        Arc::new(Self {
            max_results: config.max_results.clamp(1, MAX_RESULTS),
            catalog: deps.catalog,
        })
    }
}

/// FNV-1a, 64 bit: a fixed, documented algorithm, so every build and every process ranks
/// alike (std's `DefaultHasher` may change between Rust releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn rank(seed: u64, id: &ProductId) -> u64 {
    fnv1a(&[&seed.to_le_bytes(), id.as_str().as_bytes()])
}

#[async_trait]
impl RecommendationApi for RecommendationModule {
    async fn list_recommendations(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_ids: Vec<ProductId>,
    ) -> Result<Vec<ProductId>, RecommendationError> {
        validate_input(&product_ids)?;
        let products = self
            .catalog
            .list_products(ctx)
            .await
            .map_err(|e| RecommendationError::unavailable(format!("catalog: {e}")))?;
        let exclude: HashSet<&ProductId> = product_ids.iter().collect();
        let mut sorted_input: Vec<&str> = exclude.iter().map(|id| id.as_str()).collect();
        sorted_input.sort_unstable();
        let joined = sorted_input.join(",");
        let seed = fnv1a(&[user_id.as_str().as_bytes(), joined.as_bytes()]);
        let mut candidates: Vec<ProductId> = products
            .into_iter()
            .map(|p| p.id)
            .filter(|id| !exclude.contains(id))
            .collect();
        candidates.sort_by_key(|id| rank(seed, id));
        candidates.truncate(self.max_results);
        Ok(candidates)
    }
}

impl RecommendationModule {
    /// Starts the module from what the process gives it (see `#[module]`).
    async fn from_start(start: Start<'_, RecommendationConfig>) -> Result<Arc<Self>, StartError> {
        let deps = RecommendationDeps {
            catalog: start.dep::<catalog_api::CatalogContract>()?,
        };
        Ok(RecommendationModule::new(start.config(), deps))
    }
}
