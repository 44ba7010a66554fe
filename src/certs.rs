//! `cleave certs`: a deployment's own certificate authority, and the certificates its
//! processes present: a server certificate for listeners, and one per module naming it
//! (`<module>.modules.cleave`, what [`cleave_kernel::tls::PeerModules`] reads), so that
//! operations reserved to modules (charges, refunds, shipments, confirmations, carts for the
//! storefront) work across processes. Made with rcgen (ECDSA P-256), written as PEM files;
//! private keys are readable by their owner only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cleave_kernel::tls::MODULE_DOMAIN;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA's certificate and key in `dir`.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

/// The CA's parameters: the same every time, so that `issue` can sign with the saved key
/// without parsing the certificate back.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Cleave deployment CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Writes `contents` to `path`; keys (`private`) readable by their owner only. Refuses to
/// replace a file.
fn write_new(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (it may exist already: remove it to replace it)",
            path.display()
        )
    })?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The CA in `dir`, to sign with.
fn issuer(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let path = dir.join(CA_KEY);
    let pem = fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the CA key {} (run `cleave certs init --dir {}` first)",
            path.display(),
            dir.display()
        )
    })?;
    let key = KeyPair::from_pem(&pem).with_context(|| format!("{} is no key", path.display()))?;
    Ok(Issuer::new(ca_params()?, key))
}

/// Signs a certificate for `names` (subject alternative names) with the CA of `dir` and
/// writes `<file>.pem` and `<file>.key`; returns the certificate's path.
fn sign(dir: &Path, file: &str, names: Vec<String>) -> anyhow::Result<PathBuf> {
    let issuer = issuer(dir)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.clone())
        .with_context(|| format!("invalid names {names:?}"))?;
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = name;
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{file}.pem"));
    write_new(&dir.join(format!("{file}.key")), &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

/// `cleave certs init`: a new CA in `dir` (created if missing), and a server certificate for
/// `hosts` (names or addresses the listeners are reached at).
///
/// # Errors
/// When `dir` already holds a CA, or a file cannot be written.
pub fn init(dir: &Path, hosts: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if dir.join(CA_KEY).exists() {
        bail!(
            "{} already holds a CA ({CA_KEY}); issue certificates with it, or remove it first",
            dir.display()
        );
    }
    let key = KeyPair::generate()?;
    let ca = ca_params()?.self_signed(&key)?;
    write_new(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write_new(&dir.join(CA_CERT), &ca.pem(), false)?;
    let server = sign(dir, "server", hosts.to_vec())?;
    Ok(vec![dir.join(CA_CERT), server])
}

/// `cleave certs issue --module m[,n..]`: a certificate naming `modules` of the deployment
/// (one process may host several), signed by the CA in `dir`, written as `m+n.pem`.
///
/// # Errors
/// When there is no CA in `dir`, or the files exist already.
pub fn issue(dir: &Path, given: &[String]) -> anyhow::Result<PathBuf> {
    let mut modules: Vec<&String> = Vec::new();
    for m in given {
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    let names = modules
        .iter()
        .map(|m| format!("{m}.{MODULE_DOMAIN}"))
        .collect();
    let file = modules
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join("+");
    sign(dir, &file, names)
}
