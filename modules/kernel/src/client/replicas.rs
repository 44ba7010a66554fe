//! The target's replicas: each with its circuit breaker and load, found statically or by
//! discovery, one chosen per call.

use super::*;

/// One replica of the target module: where it is, its circuit breaker, its load.
pub(super) struct Replica {
    url: Url,
    /// The address DNS discovery found it at (static replicas are reached by their url).
    addr: Option<SocketAddr>,
    transport: Wire,
    pub(super) breaker: Arc<Breaker>,
    load: Load,
}

impl Replica {
    pub(super) fn new(
        module: &'static str,
        url: Url,
        addr: Option<SocketAddr>,
        client: WireClient,
        settings: &RemoteSettings,
    ) -> Arc<Self> {
        let transport = match client {
            WireClient::Http(http) => Wire::Http(HttpTransport {
                module,
                base: Base::of(&url),
                http,
                max_answer_bytes: settings.max_answer_bytes,
            }),
            WireClient::Grpc(client) => Wire::Grpc(grpc::GrpcTransport {
                module,
                origin: grpc::GrpcTransport::origin_of(&url),
                client,
                max_answer_bytes: settings.max_answer_bytes,
            }),
        };
        Arc::new(Self {
            url,
            addr,
            transport,
            breaker: Breaker::new(module, settings.breaker),
            load: Load::default(),
        })
    }

    /// Its url, with the address discovery found it at.
    pub(super) fn name(&self) -> String {
        match self.addr {
            Some(addr) => format!("{} ({addr})", self.url),
            None => self.url.to_string(),
        }
    }
}

/// The target's replicas, and the innermost stage of the pipeline: each try goes to one of
/// them, chosen by [`balance::pick`] among those whose breaker lets a call through, bounded
/// by the caller's deadline (a try cut off by it counts as a failure of that replica). A try
/// that failed made its replica dear, so the retry stage's next try goes elsewhere.
#[derive(Clone)]
pub(super) struct Replicas {
    pub(super) module: &'static str,
    pub(super) set: Arc<arc_swap::ArcSwap<Vec<Arc<Replica>>>>,
}

impl Replicas {
    /// Looks the urls' host names up every `every`, the replicas becoming every address
    /// found (one kept as it is, breaker and load, while its address stays). Stops when the
    /// client is dropped; without a runtime there is nothing to run it on, and the urls stay
    /// the replicas.
    pub(super) fn discover(&self, urls: Vec<Url>, every: Duration, settings: RemoteSettings) {
        let module = self.module;
        self.keep_up("DNS discovery", |weak| async move {
            loop {
                let Some(set) = weak.upgrade() else { break };
                let current = set.load_full();
                let next = rediscover(module, &urls, &current, &settings, |host, port| {
                    let host = host.to_owned();
                    async move {
                        tokio::net::lookup_host((host.as_str(), port))
                            .await
                            .map(|addrs| addrs.collect::<Vec<_>>())
                            .map_err(|e| e.to_string())
                    }
                })
                .await;
                if let Some(next) = next {
                    set.store(Arc::new(next));
                }
                drop(set);
                tokio::time::sleep(every).await;
            }
        });
    }

    /// Runs `task`, which keeps the set up to date through its weak handle (ending when the
    /// client is dropped), on the current runtime; without one there is nothing to run it on,
    /// and the replicas stay as they are.
    fn keep_up<F, Fut>(&self, what: &'static str, task: F)
    where
        F: FnOnce(std::sync::Weak<arc_swap::ArcSwap<Vec<Arc<Replica>>>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(module = self.module, "no runtime: {what} does not run");
            return;
        };
        runtime.spawn(task(Arc::downgrade(&self.set)));
    }

    /// Follows the registry's list of the module's replicas: each url listed is one (one kept
    /// as it is, breaker and load, while it stays listed). Stops when the client is dropped.
    pub(super) fn follow(&self, mut found: Found, http: WireClient, settings: RemoteSettings) {
        let module = self.module;
        self.keep_up("following the registry", |weak| async move {
            loop {
                let listed = found.borrow_and_update().clone();
                if let Some(urls) = listed {
                    let Some(set) = weak.upgrade() else { break };
                    let current = set.load_full();
                    let next: Vec<Arc<Replica>> = urls
                        .into_iter()
                        .map(|url| {
                            current
                                .iter()
                                .find(|r| r.url == url && r.addr.is_none())
                                .cloned()
                                .unwrap_or_else(|| {
                                    Replica::new(module, url, None, http.clone(), &settings)
                                })
                        })
                        .collect();
                    set.store(Arc::new(next));
                }
                if found.changed().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The replicas after looking `urls` up with `lookup`: every address of each url, the ones
/// `current` already has kept as they are; a url whose lookup fails keeps its current
/// replicas. `None` when nothing changed or nothing would be left.
async fn rediscover<F, Fut>(
    module: &'static str,
    urls: &[Url],
    current: &[Arc<Replica>],
    settings: &RemoteSettings,
    lookup: F,
) -> Option<Vec<Arc<Replica>>>
where
    F: Fn(&str, u16) -> Fut,
    Fut: Future<Output = Result<Vec<SocketAddr>, String>>,
{
    let mut next: Vec<Arc<Replica>> = Vec::new();
    for url in urls {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let mine = current.iter().filter(|r| r.url == *url);
        match lookup(host, port).await {
            Ok(addrs) if !addrs.is_empty() => {
                for addr in addrs {
                    if let Some(kept) = current
                        .iter()
                        .find(|r| r.url == *url && r.addr == Some(addr))
                    {
                        next.push(kept.clone());
                        continue;
                    }
                    match wire_client(module, settings, Some((host, addr))) {
                        Ok(http) => next.push(Replica::new(
                            module,
                            url.clone(),
                            Some(addr),
                            http,
                            settings,
                        )),
                        Err(e) => tracing::warn!(module, %addr, error = %e, "replica left out"),
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(module, host, "DNS found no address; keeping the last ones");
                next.extend(mine.cloned());
            }
            Err(e) => {
                tracing::warn!(module, host, error = %e, "DNS lookup failed; keeping the last addresses");
                next.extend(mine.cloned());
            }
        }
    }
    let same =
        next.len() == current.len() && next.iter().zip(current).all(|(a, b)| Arc::ptr_eq(a, b));
    if same || next.is_empty() {
        return None;
    }
    tracing::info!(
        module,
        replicas = %next.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
        "replicas found"
    );
    Some(next)
}

impl Service<RemoteRequest> for Replicas {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        let module = self.module;
        let set = self.set.load();
        if set.is_empty() {
            return Box::pin(async move {
                Err(RemoteError::NotSent {
                    module,
                    reason: "no replica is known (none registered, or the registry not yet \
                             reached)"
                        .into(),
                })
            });
        }
        // A breaker that looked usable may still refuse (its one half-open probe just went
        // to another call): then the choice is made again among the others.
        let mut refused: Vec<usize> = Vec::new();
        let chosen = loop {
            let Some(i) = balance::pick(
                set.len(),
                |i| !refused.contains(&i) && set[i].breaker.wait().is_none(),
                |i| set[i].load.cost(),
            ) else {
                break None;
            };
            if set[i].breaker.admit().is_ok() {
                break Some(set[i].clone());
            }
            refused.push(i);
        };
        let Some(replica) = chosen else {
            let retry_after = set
                .iter()
                .filter_map(|r| r.breaker.wait())
                .min()
                .unwrap_or(Duration::from_millis(100));
            crate::metrics::record_refused(module, "breaker");
            return Box::pin(async move {
                Err(RemoteError::CircuitOpen {
                    module,
                    retry_after,
                })
            });
        };
        let left = req.ctx.remaining();
        let started = replica.load.start();
        let fut = replica.transport.send(req);
        Box::pin(async move {
            let result = match left {
                Some(left) => tokio::time::timeout(left, fut)
                    .await
                    .unwrap_or(Err(RemoteError::DeadlineExceeded { module })),
                None => fut.await,
            };
            let failed = failed(&result);
            replica.load.finish(started, failed);
            replica.breaker.record(failed);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica_at(url: &Url, addr: SocketAddr) -> Arc<Replica> {
        let settings = RemoteSettings::default();
        let http = wire_client("probe", &settings, None).expect("client");
        Replica::new("probe", url.clone(), Some(addr), http, &settings)
    }

    #[test]
    fn a_call_goes_to_the_path_and_query_under_the_replica_url() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        for (base, path, expected) in [
            (
                "http://catalog:8080",
                "/api/catalog/v1/products/OLJCESPC7Z",
                "http://catalog:8080/api/catalog/v1/products/OLJCESPC7Z",
            ),
            (
                "https://catalog:8443/",
                "/api/catalog/v1/products?q=red%20mug&limit=2",
                "https://catalog:8443/api/catalog/v1/products?q=red%20mug&limit=2",
            ),
            (
                "http://edge/shop/",
                "/api/cart/v1/carts/a%2Fb",
                "http://edge/shop/api/cart/v1/carts/a%2Fb",
            ),
        ] {
            let url = Url::parse(base).expect("url");
            let replica = replica_at(&url, addr);
            let Wire::Http(transport) = &replica.transport else {
                panic!("{base} is reached over REST");
            };
            let url = transport.url_for(path).expect("an http url");
            assert_eq!(url.to_string(), expected, "{base}");
        }
    }

    #[tokio::test]
    async fn discovery_keeps_replicas_whose_address_stays_and_the_last_ones_when_dns_fails() {
        let url = Url::parse("http://catalog:8080").expect("url");
        let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 8080));
        let settings = RemoteSettings::default();
        let current = vec![replica_at(&url, addr(1)), replica_at(&url, addr(2))];
        let urls = [url.clone()];

        // .2 stays (the same replica, its breaker and load), .1 went, .3 came.
        let next = rediscover("probe", &urls, &current, &settings, |host, port| {
            assert_eq!((host, port), ("catalog", 8080));
            async {
                Ok(vec![
                    SocketAddr::from(([10, 0, 0, 2], 8080)),
                    SocketAddr::from(([10, 0, 0, 3], 8080)),
                ])
            }
        })
        .await
        .expect("changed");
        assert_eq!(next.len(), 2);
        assert!(Arc::ptr_eq(&next[0], &current[1]));
        assert_eq!(next[1].addr, Some(addr(3)));
        assert_eq!(next[1].name(), "http://catalog:8080/ (10.0.0.3:8080)");

        // The same answer again: nothing to change.
        let again = rediscover("probe", &urls, &next, &settings, |_, _| async {
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 2], 8080)),
                SocketAddr::from(([10, 0, 0, 3], 8080)),
            ])
        })
        .await;
        assert!(again.is_none());

        // DNS down, or no address: the last ones stay.
        for answer in [Err("no DNS".to_owned()), Ok(Vec::new())] {
            let kept = rediscover("probe", &urls, &next, &settings, |_, _| {
                let answer = answer.clone();
                async move { answer }
            })
            .await;
            assert!(kept.is_none(), "the set is unchanged");
        }
    }
}
