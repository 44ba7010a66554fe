//! `cleave health`: asks this container's own `cleave serve` whether it is alive (or ready),
//! for probes where there is no shell and no curl (the distroless image's HEALTHCHECK,
//! Kubernetes exec probes). It reads the same configuration as `serve`, so it finds the
//! listener (loopback when the listener is a wildcard address) and its scheme by itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Settings;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/health/live`: the process answers.
    Live,
    /// `/health/ready`: it can serve (database, required modules).
    Ready,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Self::Live => "/health/live",
            Self::Ready => "/health/ready",
        }
    }
}

/// Where a process listening on `listen` is reached from inside its own container.
#[must_use]
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Asks the process `settings` describe; `Ok` with the answer's status line when it says
/// 200, else an error that says what came back.
///
/// The certificate is not checked (as kubelet's HTTPS probes do not check it): the probe
/// talks to its own process on loopback, sends nothing secret and believes nothing but the
/// status. It presents the module certificate (`remote.client_cert_file`) when there is
/// one, for listeners that refuse connections without a client certificate.
///
/// # Errors
/// A message naming the url and what went wrong (no answer, or a status other than 200).
pub async fn check(settings: &Settings, probe: Probe, timeout: Duration) -> Result<String, String> {
    let addr = local_address(settings.app.server.listen);
    let scheme = if settings.server_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{addr}{}", probe.path());
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .tls_danger_accept_invalid_certs(true);
    if let Some(pem) = &settings.remote_tls.identity_pem {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| format!("remote.client_cert_file: not a certificate and key: {e}"))?;
        builder = builder.identity(identity);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build the probe's HTTP client: {e}"))?;
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: no answer: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::OK {
        Ok(format!("{url}: {status}"))
    } else {
        Err(format!("{url}: {status} {}", body.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let at = |s: &str| local_address(s.parse().expect("addr"));
        assert_eq!(at("0.0.0.0:8080"), "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(at("[::]:9000"), "[::1]:9000".parse().expect("addr"));
        assert_eq!(at("10.1.2.3:8080"), "10.1.2.3:8080".parse().expect("addr"));
    }
}
