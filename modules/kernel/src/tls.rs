//! TLS with rustls (aws-lc-rs): the listener's server configuration (TLS 1.3 and 1.2 only,
//! optionally requiring client certificates) from PEM files.

use std::path::Path;
use std::sync::Arc;

use std::any::Any;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The protocol versions offered: TLS 1.3 and 1.2, nothing older.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} holds a malformed certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The DNS name under which a module's certificate names it: `<module>.modules.cleave` (in
/// the certificate's subject alternative names).
pub const MODULE_DOMAIN: &str = "modules.cleave";

/// The modules a caller proved to be, by a client certificate (verified against
/// `server.tls.client_ca_file` during the handshake) naming `<module>.modules.cleave`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerModules(pub Arc<[&'static str]>);

/// Reads the caller's modules from an accepted TLS connection (for `HttpServer::on_connect`).
/// `None` for plain TCP, no client certificate, or a certificate naming no module.
pub fn peer_modules(conn: &dyn Any, known: &[&'static str]) -> Option<PeerModules> {
    let tls = conn
        .downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>(
        )?;
    let (_, session) = tls.get_ref();
    modules_named_by(session.peer_certificates()?.first()?, known)
}

/// The modules of `known` a verified client certificate names (`<module>.modules.cleave`).
pub fn modules_named_by(cert: &CertificateDer<'_>, known: &[&'static str]) -> Option<PeerModules> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let names: Vec<&'static str> = known
        .iter()
        .copied()
        .filter(|m| {
            ServerName::try_from(format!("{m}.{MODULE_DOMAIN}"))
                .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
        })
        .collect();
    (!names.is_empty()).then(|| PeerModules(names.into()))
}

/// A server configuration presenting `cert_file` (PEM chain) with `key_file` (PEM private
/// key); with `client_ca_file`, clients present a certificate issued by it (mTLS): always
/// when `client_cert_required`, otherwise only if they have one (callers are then told apart
/// by [`PeerModules`]).
///
/// # Errors
/// What is wrong with which file.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
    client_cert_required: bool,
) -> Result<ServerConfig, String> {
    let chain = certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{} is not a usable CA: {e}", ca.display()))?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !client_cert_required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })
}
