//! The etcd registry of `discovery.kind = "etcd"`.
//!
//! Each process puts the url it serves at under `<prefix>/modules/<module>/<instance>` for
//! every module it hosts, tied to a lease it keeps alive: the keys go when it starts draining
//! (the lease revoked) or, if it dies, when the lease runs out. Callers watch
//! `<prefix>/modules/<module>/` and call the urls found there. When etcd cannot be reached,
//! callers keep the last urls they found and readiness says so (`discovery:etcd`, degraded);
//! registrations are made again once it answers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use tokio::sync::{oneshot, watch};
use url::Url;

use crate::health::ReadinessCheck;

/// Where the registry is and how registrations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// etcd client urls, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// The deployment's key prefix, e.g. `/cleave/shop` (processes of one deployment share
    /// it; other deployments on the same etcd use their own).
    pub prefix: String,
    /// Lease time to live: how long the keys of a process that died without deregistering
    /// stay. Kept alive every third of it.
    pub ttl: Duration,
    /// Longest to wait for a connection to etcd, and for one request.
    pub timeout: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/cleave".into(),
            ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
        }
    }
}

/// The urls of one module's replicas as the registry lists them; `None` until it has
/// answered once.
pub type Found = watch::Receiver<Option<Vec<Url>>>;

/// A connection to the registry, shared by the registration of this process and every
/// module client's watch.
pub struct Registry {
    settings: RegistrySettings,
    prefix: String,
    client: Client,
    health: Mutex<Health>,
    followed: Mutex<HashMap<&'static str, Found>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("endpoints", &self.settings.endpoints)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whether etcd answers, as the registry's tasks last saw.
#[derive(Debug, Default)]
struct Health {
    down_since: Option<Instant>,
    error: String,
}

impl Registry {
    /// A client of the registry at `settings.endpoints` (connections are made when first
    /// used: a registry down at start is retried, not fatal).
    ///
    /// # Errors
    /// When an endpoint is not a valid url.
    pub async fn connect(settings: RegistrySettings) -> Result<Arc<Self>, String> {
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.timeout)
            .with_timeout(settings.timeout)
            // A dead connection under a watch is noticed within seconds.
            .with_keep_alive(Duration::from_secs(3), settings.timeout)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(|e| format!("etcd at {}: {e}", settings.endpoints.join(", ")))?;
        Ok(Arc::new(Self {
            prefix: format!("/{}", settings.prefix.trim_matches('/')),
            settings,
            client,
            health: Mutex::new(Health::default()),
            followed: Mutex::new(HashMap::new()),
        }))
    }

    /// The prefix every key of `module`'s replicas starts with.
    pub fn module_prefix(&self, module: &str) -> String {
        format!("{}/modules/{module}/", self.prefix)
    }

    /// Registers `url` as a replica of each of `modules` until the returned registration is
    /// deregistered or dropped (or the process dies and the lease runs out).
    pub fn register(self: &Arc<Self>, modules: &[&'static str], url: &Url) -> Registration {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let keys: Vec<String> = modules
            .iter()
            .map(|m| format!("{}{instance}", self.module_prefix(m)))
            .collect();
        let (stop, stopped) = oneshot::channel();
        let me = self.clone();
        let value = url.to_string();
        let task = tokio::spawn(async move { me.keep_registered(keys, value, stopped).await });
        Registration {
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn keep_registered(
        &self,
        keys: Vec<String>,
        value: String,
        mut stop: oneshot::Receiver<()>,
    ) {
        let lease = std::sync::atomic::AtomicI64::new(0);
        let mut backoff = Backoff::default();
        loop {
            let attempt = async {
                let mut client = self.client.clone();
                let ttl = i64::try_from(self.settings.ttl.as_secs().max(2)).unwrap_or(10);
                let id = client.lease_grant(ttl, None).await?.id();
                lease.store(id, std::sync::atomic::Ordering::SeqCst);
                for key in &keys {
                    client
                        .put(
                            key.as_str(),
                            value.as_str(),
                            Some(PutOptions::new().with_lease(id)),
                        )
                        .await?;
                }
                let (mut keeper, mut answers) = client.lease_keep_alive(id).await?;
                self.up();
                backoff.reset();
                tracing::info!(keys = %keys.join(", "), url = %value, "registered in etcd");
                let mut tick = tokio::time::interval(self.settings.ttl / 3);
                loop {
                    tick.tick().await;
                    keeper.keep_alive().await?;
                    match answers.message().await? {
                        Some(answer) if answer.ttl() > 0 => {}
                        _ => {
                            return Err::<std::convert::Infallible, _>(
                                etcd_client::Error::LeaseKeepAliveError("the lease ran out".into()),
                            );
                        }
                    }
                }
            };
            let error = tokio::select! {
                _ = &mut stop => break,
                result = attempt => match result {
                    Err(e) => e,
                    Ok(never) => match never {},
                },
            };
            self.down(&error);
            if backoff.0 == 0 {
                tracing::warn!(error = %error, "etcd registration lost; registering again");
            } else {
                tracing::debug!(error = %error, "etcd still unreachable");
            }
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(backoff.next()) => {}
            }
        }
        let id = lease.load(std::sync::atomic::Ordering::SeqCst);
        if id != 0 {
            let mut client = self.client.clone();
            match client.lease_revoke(id).await {
                Ok(_) => tracing::info!(keys = %keys.join(", "), "deregistered from etcd"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not deregister from etcd; the keys go when the lease runs out"
                ),
            }
        }
    }

    /// The urls of `module`'s replicas, kept up to date by a watch of its prefix (one per
    /// module and process, shared).
    pub fn follow(self: &Arc<Self>, module: &'static str) -> Found {
        let mut followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = followed.get(module) {
            return found.clone();
        }
        let (tx, rx) = watch::channel(None);
        let me = self.clone();
        tokio::spawn(async move { me.keep_following(module, tx).await });
        followed.insert(module, rx.clone());
        rx
    }

    async fn keep_following(&self, module: &'static str, tx: watch::Sender<Option<Vec<Url>>>) {
        let prefix = self.module_prefix(module);
        let mut backoff = Backoff::default();
        loop {
            let result = async {
                let mut client = self.client.clone();
                let got = client
                    .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                    .await?;
                let revision = got.header().map_or(0, |h| h.revision());
                let mut found: BTreeMap<String, Url> = BTreeMap::new();
                for kv in got.kvs() {
                    if let Some(url) = replica_url(module, kv.value()) {
                        found.insert(String::from_utf8_lossy(kv.key()).into_owned(), url);
                    }
                }
                publish(module, &tx, &found);
                let mut stream = client
                    .watch(
                        prefix.as_str(),
                        Some(
                            WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(revision + 1),
                        ),
                    )
                    .await?;
                self.up();
                backoff.reset();
                while let Some(answer) = stream.message().await? {
                    if answer.canceled() {
                        return Err(etcd_client::Error::WatchError(format!(
                            "watch canceled: {}",
                            answer.cancel_reason()
                        )));
                    }
                    for event in answer.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        match event.event_type() {
                            EventType::Put => match replica_url(module, kv.value()) {
                                Some(url) => found.insert(key, url),
                                None => found.remove(&key),
                            },
                            EventType::Delete => found.remove(&key),
                        };
                    }
                    publish(module, &tx, &found);
                }
                Err::<(), _>(etcd_client::Error::WatchError("the watch ended".into()))
            }
            .await;
            if let Err(error) = result {
                self.down(&error);
                // Said once per outage; the attempts that follow are debug lines.
                if backoff.0 == 0 {
                    tracing::warn!(
                        module,
                        error = %error,
                        "etcd watch lost; calls go to the last replicas found"
                    );
                } else {
                    tracing::debug!(module, error = %error, "etcd still unreachable");
                }
            }
            tokio::time::sleep(backoff.next()).await;
        }
    }

    fn up(&self) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if health.down_since.take().is_some() {
            tracing::info!(endpoints = %self.settings.endpoints.join(", "), "etcd answers again");
        }
    }

    fn down(&self, error: &etcd_client::Error) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.down_since.get_or_insert_with(Instant::now);
        health.error = error.to_string();
    }

    /// How many replicas of each followed module the registry last listed.
    fn last_found(&self) -> String {
        let followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<String> = followed
            .iter()
            .map(|(module, found)| match &*found.borrow() {
                Some(urls) => format!("{module} {}", urls.len()),
                None => format!("{module} none yet"),
            })
            .collect();
        counts.sort();
        counts.join(", ")
    }
}

/// A replica's url from a registry value; a value that is not one is left out (and said).
fn replica_url(module: &str, value: &[u8]) -> Option<Url> {
    let text = String::from_utf8_lossy(value);
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            tracing::warn!(module, value = %text, "registry value is not an http(s) url; left out");
            None
        }
    }
}

/// Sends the urls found, sorted, when they differ from the last sent.
fn publish(
    module: &'static str,
    tx: &watch::Sender<Option<Vec<Url>>>,
    found: &BTreeMap<String, Url>,
) {
    let mut urls: Vec<Url> = found.values().cloned().collect();
    urls.sort();
    urls.dedup();
    tx.send_if_modified(|current| {
        if current.as_ref() == Some(&urls) {
            return false;
        }
        tracing::info!(
            module,
            replicas = %urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", "),
            "etcd lists replicas"
        );
        *current = Some(urls);
        true
    });
}

/// Waits between attempts to reach etcd again: 250 ms doubling up to 5 s, jittered.
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = Duration::from_millis(250).saturating_mul(1 << self.0.min(5));
        self.0 += 1;
        let cap = base.min(Duration::from_secs(5));
        cap / 2 + cap.mul_f64(fastrand::f64() / 2.0)
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

#[async_trait]
impl ReadinessCheck for Registry {
    fn name(&self) -> String {
        "discovery:etcd".into()
    }

    async fn check(&self) -> Result<(), String> {
        let (since, error) = {
            let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            match health.down_since {
                None => return Ok(()),
                Some(since) => (since, health.error.clone()),
            }
        };
        Err(format!(
            "etcd at {} unreachable for {} s ({error}); calls go to the last replicas found: {}",
            self.settings.endpoints.join(", "),
            since.elapsed().as_secs(),
            self.last_found()
        ))
    }

    /// The process serves on with the replicas it last found.
    fn required(&self) -> bool {
        false
    }
}

/// This process's entries in the registry. Dropping it deregisters in the background;
/// [`Registration::deregister`] does so and waits.
#[derive(Debug)]
pub struct Registration {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Registration {
    /// Takes this process's entries out of the registry (revokes the lease), waiting at
    /// most `within` for etcd to confirm.
    pub async fn deregister(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(within, task).await.is_err()
        {
            tracing::warn!("etcd did not confirm the deregistration in time");
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_five_seconds_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let first = backoff.next();
        assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
        for _ in 0..10 {
            assert!(backoff.next() <= Duration::from_secs(5));
        }
        assert!(backoff.next() >= Duration::from_millis(2500));
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(250));
    }

    #[test]
    fn only_http_urls_are_replicas() {
        assert_eq!(
            replica_url("catalog", b"https://10.0.0.7:8443/").map(String::from),
            Some("https://10.0.0.7:8443/".to_owned())
        );
        assert_eq!(replica_url("catalog", b"not a url"), None);
        assert_eq!(replica_url("catalog", b"ftp://10.0.0.7/"), None);
    }

    #[tokio::test]
    async fn publish_sends_only_changes_sorted() {
        let (tx, mut rx) = watch::channel(None);
        let mut found = BTreeMap::new();
        found.insert("b".to_owned(), Url::parse("http://b:1").expect("url"));
        found.insert("a".to_owned(), Url::parse("http://c:1").expect("url"));
        publish("catalog", &tx, &found);
        assert!(rx.has_changed().expect("open"));
        let urls = rx.borrow_and_update().clone().expect("found");
        assert_eq!(
            urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["http://b:1/", "http://c:1/"]
        );
        publish("catalog", &tx, &found);
        assert!(!rx.has_changed().expect("open"), "nothing changed");
    }
}
