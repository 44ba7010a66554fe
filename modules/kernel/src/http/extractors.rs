//! Extractor configurations whose errors are problem+json with stable codes, and the answer
//! of modules this process cannot reach.

use actix_web::{HttpResponse, web};

use super::HttpLimits;
use crate::error::{Failure, KernelError};

/// Registers extractor configs whose errors are problem+json with stable codes:
/// `cleave.invalid_json`, `cleave.payload_too_large`, `cleave.unsupported_media_type`,
/// `cleave.invalid_path`, `cleave.invalid_query`.
pub fn configure_extractors(cfg: &mut web::ServiceConfig, limits: HttpLimits) {
    let limit = limits.max_body_bytes;
    cfg.app_data(limits)
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(move |err, _| {
                    use actix_web::error::JsonPayloadError as J;
                    let kernel = match &err {
                        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
                            KernelError::PayloadTooLarge { limit_bytes: limit }
                        }
                        J::ContentType => KernelError::UnsupportedMediaType,
                        J::Deserialize(e) => KernelError::InvalidJson {
                            detail: e.to_string(),
                        },
                        other => KernelError::BadRequest {
                            detail: other.to_string(),
                        },
                    };
                    Failure::from(kernel).into()
                }),
        )
        .app_data(web::PayloadConfig::default().limit(limit))
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            Failure::from(KernelError::InvalidPath {
                detail: err.to_string(),
            })
            .into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            Failure::from(KernelError::InvalidQuery {
                detail: err.to_string(),
            })
            .into()
        }));
}

/// Answers every route of `module` with 503 `cleave.module_not_placed`: for a module this
/// process neither hosts nor knows the url of.
pub fn configure_not_placed(cfg: &mut web::ServiceConfig, module: &'static str) {
    cfg.service(
        web::scope(&format!("/api/{module}")).default_service(web::to(move || async move {
            Err::<HttpResponse, _>(Failure::from(KernelError::ModuleNotPlaced {
                module: module.to_owned(),
            }))
        })),
    );
}
