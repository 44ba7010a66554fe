//! The `ads` module: text ads by product category, served from memory.
//!
//! - Owns: table `ads_ads` (migrations in `cleave-migrations::ads`).
//! - Provides: [`ads_api::AdsApi`] through [`AdsModule`].
//! - Requires: nothing.
//!
//! Ads are asked for on every page and change rarely, so the whole table is kept in memory
//! ordered by category then id: read at start and again after each admin change, in every
//! replica (each change publishes [`ads_api::AdChanged`] through the outbox in its
//! transaction; every replica watches them). Random picks draw on `uuid`'s v4 generator (the operating system's randomness),
//! which the workspace already has, rather than a random-number crate for a few bits a request.

mod entity;

use cleave_kernel::module;
use std::collections::BTreeSet;
use std::sync::Arc;

use ads_api::{
    Ad, AdChanged, AdDefinition, Ads, AdsApi, AdsError, AdsRequest, MAX_ADS, MAX_MATCHED_ADS,
    validate_ad, validate_context_keys,
};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use cleave_kernel::events::{Relay, Reload, ReloadOn, Topic, commit_with};
use cleave_kernel::{ApiError, CallContext};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, DatabaseConnection, DbErr, EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.ads]`: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdsConfig {}

/// What the ads module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct AdsDeps;

/// One ad held in memory, with its normalised category.
struct StoredAd {
    category: String,
    ad: Ad,
}

#[async_trait]
impl Reload for AdsModule {
    async fn reload(&self) -> Result<(), String> {
        AdsModule::reload(self).await.map_err(|e| e.to_string())
    }
}

/// The ads module, in process.
#[module(contract = ads_api::AdsContract, config = AdsConfig, owns = "ads",
    publishes = [<AdChanged as Topic>::TOPIC], announces,
    start = AdsModule::start(start.db()?, start.config(), AdsDeps, start.relay())
        .await
        .inspect(|module| {
            start.bus().watch(AdChanged::TOPIC, Arc::new(ReloadOn(Arc::downgrade(module))));
        })
        .map_err(|e| start.failed(e)))]
pub struct AdsModule {
    db: DatabaseConnection,
    /// Every ad, ordered by category then id (replaced whole after a change).
    ads: ArcSwap<Vec<StoredAd>>,
    /// Delivers [`AdChanged`] from the outbox.
    relay: Relay,
}

impl AdsModule {
    /// Loads every ad from the (migrated) database.
    ///
    /// # Errors
    /// [`AdsError`] when the ads cannot be read.
    pub async fn start(
        db: DatabaseConnection,
        _config: &AdsConfig,
        _deps: AdsDeps,
        relay: Relay,
    ) -> Result<Arc<Self>, AdsError> {
        let ads = load(&db).await.map_err(storage_error)?;
        tracing::info!(ads = ads.len(), "ads loaded");
        Ok(Arc::new(Self {
            db,
            ads: ArcSwap::from_pointee(ads),
            relay,
        }))
    }

    /// Reads every ad again.
    async fn reload(&self) -> Result<(), AdsError> {
        self.ads
            .store(Arc::new(load(&self.db).await.map_err(storage_error)?));
        Ok(())
    }

    /// Enqueues [`AdChanged`] for `ad_id` in `tx` (the change), commits, tells the relay,
    /// and reads the ads again.
    async fn announce(
        &self,
        tx: sea_orm::DatabaseTransaction,
        ctx: &CallContext,
        ad_id: &str,
    ) -> Result<(), AdsError> {
        let changed = AdChanged {
            ad_id: ad_id.to_owned(),
        };
        commit_with(tx, ctx, &changed, &self.relay)
            .await
            .map_err(|e| AdsError::unavailable(e.to_string()))?;
        self.reload().await
    }

    /// The ads whose category is one of `keys`, each once, in stored order, at most
    /// [`MAX_MATCHED_ADS`].
    fn matching(&self, keys: &[String]) -> Vec<Ad> {
        let keys: BTreeSet<String> = keys.iter().map(|k| normalize(k)).collect();
        self.ads
            .load()
            .iter()
            .filter(|stored| keys.contains(&stored.category))
            .take(MAX_MATCHED_ADS)
            .map(|stored| stored.ad.clone())
            .collect()
    }

    /// [`MAX_ADS`] distinct ads chosen at random (all of them when there are fewer).
    fn random(&self) -> Vec<Ad> {
        let ads = self.ads.load();
        random_indices(ads.len(), MAX_ADS, random_below)
            .into_iter()
            .filter_map(|i| ads.get(i))
            .map(|stored| stored.ad.clone())
            .collect()
    }
}

/// How categories and context keys are compared.
fn normalize(key: &str) -> String {
    key.trim().to_ascii_lowercase()
}

async fn load(db: &DatabaseConnection) -> Result<Vec<StoredAd>, DbErr> {
    let mut rows: Vec<(String, String, Ad)> = entity::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let ad = Ad {
                redirect_url: row.redirect_url,
                text: row.text,
            };
            (normalize(&row.category), row.id, ad)
        })
        .collect();
    // Sorted here rather than by the database: SQLite and PostgreSQL collate strings
    // differently, and the order of matched ads is part of the contract.
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(rows
        .into_iter()
        .map(|(category, _, ad)| StoredAd { category, ad })
        .collect())
}

fn storage_error(err: DbErr) -> AdsError {
    cleave_kernel::db::storage_error(&err)
}

/// `k` distinct indices below `n` (all `n` when `k > n`), by a partial Fisher-Yates shuffle.
/// `below(m)` draws a number in `0..m`; out-of-range draws are folded back into range, so the
/// picks stay distinct whatever the source returns.
fn random_indices(n: usize, k: usize, mut below: impl FnMut(usize) -> usize) -> Vec<usize> {
    let k = k.min(n);
    let mut pool: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let left = n - i;
        let j = i + below(left) % left;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// A number in `0..bound` from the 48 leading random bits of a v4 UUID (the modulo bias is
/// negligible for the few ads there are).
fn random_below(bound: usize) -> usize {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 80) as u64;
    (bits % bound.max(1) as u64) as usize
}

#[async_trait]
impl AdsApi for AdsModule {
    async fn get_ads(&self, _ctx: &CallContext, req: AdsRequest) -> Result<Ads, AdsError> {
        validate_context_keys(&req.context_keys)?;
        let matched = self.matching(&req.context_keys);
        let ads = if matched.is_empty() {
            self.random()
        } else {
            matched
        };
        Ok(Ads { ads })
    }

    async fn put_ad(
        &self,
        ctx: &CallContext,
        ad_id: String,
        ad: AdDefinition,
    ) -> Result<AdDefinition, AdsError> {
        validate_ad(&ad_id, &ad)?;
        let saved = AdDefinition {
            category: normalize(&ad.category),
            redirect_url: ad.redirect_url,
            text: ad.text.trim().to_owned(),
        };
        let tx = self.db.begin().await.map_err(storage_error)?;
        entity::Entity::insert(entity::ActiveModel {
            id: ActiveValue::Set(ad_id.clone()),
            category: ActiveValue::Set(saved.category.clone()),
            redirect_url: ActiveValue::Set(saved.redirect_url.clone()),
            text: ActiveValue::Set(saved.text.clone()),
        })
        .on_conflict(
            OnConflict::column(entity::Column::Id)
                .update_columns([
                    entity::Column::Category,
                    entity::Column::RedirectUrl,
                    entity::Column::Text,
                ])
                .to_owned(),
        )
        .exec_without_returning(&tx)
        .await
        .map_err(storage_error)?;
        self.announce(tx, ctx, &ad_id).await?;
        tracing::info!(ad_id = %ad_id, "ad saved");
        Ok(saved)
    }

    async fn delete_ad(&self, ctx: &CallContext, ad_id: String) -> Result<(), AdsError> {
        let tx = self.db.begin().await.map_err(storage_error)?;
        let deleted = entity::Entity::delete_by_id(ad_id.clone())
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        if deleted.rows_affected == 0 {
            return Err(AdsError::AdNotFound { ad_id });
        }
        self.announce(tx, ctx, &ad_id).await?;
        tracing::info!(ad_id = %ad_id, "ad removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_distinct_and_in_range(picks: &[usize], n: usize, k: usize) {
        assert_eq!(picks.len(), k.min(n), "{picks:?} from {n}");
        let set: BTreeSet<&usize> = picks.iter().collect();
        assert_eq!(set.len(), picks.len(), "{picks:?} has repeats");
        assert!(picks.iter().all(|&i| i < n), "{picks:?} out of 0..{n}");
    }

    #[test]
    fn random_picks_are_distinct() {
        for _ in 0..1000 {
            let picks = random_indices(9, MAX_ADS, random_below);
            assert_distinct_and_in_range(&picks, 9, MAX_ADS);
        }
    }

    #[test]
    fn random_picks_stay_distinct_whatever_the_source_draws() {
        let sources: [fn(usize) -> usize; 4] = [|_| 0, |m| m - 1, |_| usize::MAX, |m| m];
        for source in sources {
            for n in 0..=6 {
                for k in 0..=7 {
                    assert_distinct_and_in_range(&random_indices(n, k, source), n, k);
                }
            }
        }
    }

    #[test]
    fn random_picks_reach_every_ad() {
        let mut seen = BTreeSet::new();
        for _ in 0..1000 {
            seen.extend(random_indices(9, MAX_ADS, random_below));
        }
        // Missing one of nine in 1000 draws of two has a probability of about 1e-108.
        assert_eq!(seen, (0..9).collect::<BTreeSet<usize>>());
    }

    #[test]
    fn random_below_stays_below_its_bound() {
        for bound in [1, 2, 9] {
            for _ in 0..200 {
                assert!(random_below(bound) < bound, "bound {bound}");
            }
        }
        assert_eq!(random_below(0), 0, "a zero bound does not divide by zero");
    }
}
