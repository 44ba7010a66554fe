//! Cost of a module call: a direct function call vs the same operation through the contract
//! trait in process (`Arc<dyn CatalogApi>`), for the in-memory fake and the real catalog
//! module; through the call path (the interception point every call passes) with no layer and
//! with one no-op layer, and with the layers `cleave serve` installs (the module call's span,
//! created for sampled traces only, and its metrics, with the Prometheus recorder installed);
//! and through the HTTP client over loopback. Run with `just bench` (or
//! `cargo bench --bench module_calls`).

use std::hint::black_box;
use std::sync::Arc;

use catalog::{CatalogConfig, CatalogDeps, CatalogModule};
use catalog_api::fake::FakeCatalog;
use catalog_api::{CatalogApi, CatalogContract};
use cleave_domain::ProductId;
use cleave_kernel::CallContext;
use cleave_kernel::call::{
    BoxFuture, CallInfo, CallLayer, CallLayers, CallPath, Locality, Next, Outcome,
};
use cleave_kernel::module::{Contract, Migrations};
use cleave_kernel::testing::{ContractHarness, TestDb, TestServer};
use cleave_migrations::catalog::Migrator;
use criterion::{Criterion, criterion_group, criterion_main};

/// A layer that does nothing but pass the call on: the price of the interception point.
struct Noop;

impl CallLayer for Noop {
    fn around<'a>(&'a self, _: &'a CallInfo<'a>, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        next.run()
    }
}

fn module_calls(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let id = ProductId::parse("OLJCESPC7Z").expect("id");
    let ctx = CallContext::root();

    let fake = FakeCatalog::default();
    let fake_dyn: Arc<dyn CatalogApi> = Arc::new(fake.clone());

    let db = TestDb::sqlite();
    let module = rt.block_on(async {
        let conn = ContractHarness::<CatalogModule>::new::<Migrations<Migrator>>()
            .migrated(&db)
            .await;
        CatalogModule::start(
            conn,
            &CatalogConfig { refresh_secs: 0 },
            CatalogDeps,
            cleave_kernel::events::Relay::disabled(),
        )
        .await
        .expect("catalog")
    });
    let module_dyn: Arc<dyn CatalogApi> = module.clone();

    let path = |layers| CallPath::new("bench", "catalog", Locality::Local, layers);
    let no_layer = CatalogContract::intercept(module_dyn.clone(), path(CallLayers::default()));
    let noop_layer = CatalogContract::intercept(
        module_dyn.clone(),
        path(CallLayers::new(vec![Arc::new(Noop)])),
    );

    cleave_kernel::metrics::install();
    let observed_layers = CatalogContract::intercept(
        module_dyn.clone(),
        path(CallLayers::new(vec![
            Arc::new(cleave_kernel::telemetry::CallTracing),
            Arc::new(cleave_kernel::metrics::CallMetrics),
        ])),
    );

    let served = module_dyn.clone();
    let (server, client) = rt.block_on(async {
        let server = TestServer::spawn(move |cfg| CatalogContract::configure(cfg, served.clone()));
        let client = server.client::<CatalogContract>();
        (server, client)
    });

    let mut g = c.benchmark_group("get_product");
    g.bench_function("fake/direct", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(fake.product(black_box(&id))) });
    });
    g.bench_function("fake/in_process_module_call", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(fake_dyn.get_product(&ctx, black_box(id.clone())).await) });
    });
    g.bench_function("catalog/direct", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(module.product(black_box(&id))) });
    });
    g.bench_function("catalog/in_process_module_call", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(module_dyn.get_product(&ctx, black_box(id.clone())).await)
        });
    });
    g.bench_function("catalog/call_path_without_layers", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(no_layer.get_product(&ctx, black_box(id.clone())).await) });
    });
    g.bench_function("catalog/call_path_with_a_noop_layer", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(noop_layer.get_product(&ctx, black_box(id.clone())).await)
        });
    });
    g.bench_function("catalog/call_path_with_span_and_metrics", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                observed_layers
                    .get_product(&ctx, black_box(id.clone()))
                    .await,
            )
        });
    });
    g.bench_function("catalog/remote_module_call_loopback", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(client.get_product(&ctx, black_box(id.clone())).await) });
    });
    g.finish();
    rt.block_on(server.stop());
}

criterion_group!(benches, module_calls);
criterion_main!(benches);
