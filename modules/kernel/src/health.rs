//! Health endpoints: `/health/live` (the process serves HTTP) and `/health/ready` (every
//! required [`ReadinessCheck`] passes: the database, each remote module; optional ones, such
//! as the event broker, are reported without failing it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use async_trait::async_trait;

use crate::error::{Failure, KernelError};

/// Something `/health/ready` checks: the database, a remote module.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Name shown in the readiness report, e.g. `database` or `module:catalog`.
    fn name(&self) -> String;
    /// `Ok` when ready; otherwise why not.
    async fn check(&self) -> Result<(), String>;
    /// Whether a failure makes the process not ready. Optional checks (something the process
    /// serves without, degraded) are reported as `degraded: <why>` and leave it ready.
    fn required(&self) -> bool {
        true
    }
}

/// Set when the process begins to stop: from then on readiness fails (`draining`), so that
/// load balancers, orchestrators and registries stop sending it new requests, while it
/// keeps serving those that still come for the drain period (`server.drain_secs`).
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// The process is stopping.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ReadinessCheck for Draining {
    fn name(&self) -> String {
        "draining".into()
    }

    async fn check(&self) -> Result<(), String> {
        if self.is_draining() {
            Err("the process is stopping".into())
        } else {
            Ok(())
        }
    }
}

/// `GET /health/live` (the process serves HTTP) and `GET /health/ready` (every check passes;
/// otherwise 503 `cleave.not_ready` naming the failing checks).
pub fn configure_health(cfg: &mut web::ServiceConfig, checks: Arc<Vec<Arc<dyn ReadinessCheck>>>) {
    cfg.route(
        "/health/live",
        web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "live"})) }),
    )
    .route(
        "/health/ready",
        web::get().to(move || {
            let checks = checks.clone();
            async move {
                let results = futures::future::join_all(
                    checks
                        .iter()
                        .map(|c| async move { (c.name(), c.required(), c.check().await) }),
                )
                .await;
                let mut report = serde_json::Map::new();
                let mut failed = Vec::new();
                for (name, required, result) in results {
                    match result {
                        Ok(()) => {
                            report.insert(name, "ok".into());
                        }
                        Err(why) if !required => {
                            report.insert(name, format!("degraded: {why}").into());
                        }
                        Err(why) => {
                            tracing::warn!(check = %name, reason = %why, "readiness check failed");
                            failed.push(name.clone());
                            report.insert(name, why.into());
                        }
                    }
                }
                if failed.is_empty() {
                    Ok(HttpResponse::Ok()
                        .json(serde_json::json!({"status": "ready", "checks": report})))
                } else {
                    Err(Failure::from(KernelError::NotReady {
                        failed: failed.join(", "),
                    }))
                }
            }
        }),
    );
}
