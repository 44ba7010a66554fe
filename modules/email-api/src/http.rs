//! The email module's REST API, served from any [`EmailApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{ConfirmationRequest, EmailApi};

/// Registers `/api/email/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn EmailApi>) {
    cfg.service(
        web::scope("/api/email/v1")
            .app_data(web::Data::from(api))
            .service(
                web::resource("/confirmations")
                    .route(web::post().to(send_order_confirmation))
                    .route(web::get().to(list_confirmations)),
            ),
    );
}

async fn send_order_confirmation(
    ctx: CallContext,
    api: web::Data<dyn EmailApi>,
    body: web::Json<ConfirmationRequest>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Created().json(api.send_order_confirmation(&ctx, body.into_inner()).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: String,
}

async fn list_confirmations(
    ctx: CallContext,
    api: web::Data<dyn EmailApi>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(
        api.list_confirmations(&ctx, query.into_inner().order_id)
            .await?,
    ))
}
