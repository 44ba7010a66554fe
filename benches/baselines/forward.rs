//! Benchmark baseline: a hand-written forwarding hop. actix-web receives
//! `GET /api/catalog/v1/products/{id}` and forwards it with one pooled reqwest client to
//! `TARGET`, returning the body as is. Usage: `bench-forward ADDR TARGET`.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18091".into());
    let target = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18092".into());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    HttpServer::new(move || {
        let (client, target) = (client.clone(), target.clone());
        App::new().route(
            "/api/catalog/v1/products/{id}",
            web::get().to(move |id: web::Path<String>| {
                let (client, target) = (client.clone(), target.clone());
                async move {
                    let res = client
                        .get(format!("{target}/api/catalog/v1/products/{id}"))
                        .send()
                        .await
                        .map_err(actix_web::error::ErrorBadGateway)?;
                    let status = res.status().as_u16();
                    let body = res
                        .bytes()
                        .await
                        .map_err(actix_web::error::ErrorBadGateway)?;
                    Ok::<_, actix_web::Error>(
                        HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(status)
                                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
                        )
                        .content_type("application/json")
                        .body(body),
                    )
                }
            }),
        )
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
