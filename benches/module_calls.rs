//! Cost of a module call: a direct function call vs the same operation through the contract
//! trait in process (`Arc<dyn CatalogApi>`), for the in-memory fake and the real catalog
//! module, and through the HTTP client over loopback. Run with `just bench` (or
//! `cargo bench --bench module_calls`).

use std::hint::black_box;
use std::sync::Arc;

use catalog::{CatalogConfig, CatalogDeps, CatalogModule};
use catalog_api::fake::FakeCatalog;
use catalog_api::{CatalogApi, CatalogClient};
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, RemoteSettings};
use cleave_kernel::testing::{TestDb, TestServer};
use cleave_kernel::types::ProductId;
use cleave_migrations::MigratorTrait;
use criterion::{Criterion, criterion_group, criterion_main};

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
        let conn = db.connect().await;
        cleave_migrations::catalog::Migrator::up(&conn, None)
            .await
            .expect("migrate");
        CatalogModule::start(conn, &CatalogConfig { refresh_secs: 0 }, CatalogDeps)
            .await
            .expect("catalog")
    });
    let module_dyn: Arc<dyn CatalogApi> = module.clone();

    let served = module_dyn.clone();
    let (server, client) = rt.block_on(async {
        let server =
            TestServer::spawn(move |cfg| catalog_api::http::configure(cfg, served.clone()));
        let remote = RemoteClient::new(
            "catalog",
            server.base_url.clone(),
            &RemoteSettings::default(),
        )
        .expect("client");
        (server, CatalogClient::new(remote))
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
    g.bench_function("catalog/remote_module_call_loopback", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(client.get_product(&ctx, black_box(id.clone())).await) });
    });
    g.finish();
    rt.block_on(server.stop());
}

criterion_group!(benches, module_calls);
criterion_main!(benches);
