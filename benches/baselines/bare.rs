//! Benchmark baseline: a bare actix-web handler answering `GET /api/catalog/v1/products/{id}`
//! with the same JSON cleave returns, from memory, with no middleware. Usage:
//! `bench-bare ADDR`.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    // Byte for byte what cleave answers (the benchmark script checks it).
    let body = web::Bytes::from_static(
        br#"{"id":"OLJCESPC7Z","name":"Sunglasses","description":"Polarised sunglasses with acetate frames that cut glare on the road and the water.","picture":"/static/img/products/OLJCESPC7Z.svg","price_usd":{"currency_code":"USD","units":19,"nanos":990000000},"categories":["accessories"]}"#,
    );
    HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/api/catalog/v1/products/{id}",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
