//! Layered configuration with figment, and errors that name the key and where its value came
//! from.
//!
//! Layers, lowest first: built-in defaults < `<dir>/default.toml` < `<dir>/<CLEAVE_ENV>.toml`
//! < the file given with `--config` < `CLEAVE_<SECTION>__<KEY>` environment variables
//! (`__` nests: `CLEAVE_MODULES__CART__URL` is `modules.cart.url`) < command-line flags.
//! Only variables with a `__` are read, so `CLEAVE_ENV` and friends are not taken for keys.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Provider, Source};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Environment variable naming an admin connection to a PostgreSQL server for tests.
pub const TEST_DATABASE_URL_ENV: &str = "CLEAVE_TEST_DATABASE_URL";

/// A configuration problem: which key, where its value came from, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error at `{key}` (set by {origin}): {message}")]
pub struct ConfigError {
    /// The dotted key, e.g. `modules.cart.url`.
    pub key: String,
    /// Where the value came from, e.g. `env var CLEAVE_MODULES__CART__URL`.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`, with its origin looked up in `figment`.
    pub fn at(figment: &Figment, key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            origin: origin_of(figment, key),
            message: message.into(),
        }
    }

    /// Converts figment's error (the first one, if several), keeping key and origin.
    pub fn from_figment(err: figment::Error, figment: &Figment) -> Self {
        let key = err.path.join(".");
        let origin = match &err.metadata {
            Some(md) => describe(md, &key),
            None if key.is_empty() => "configuration".to_owned(),
            None => origin_of(figment, &key),
        };
        Self {
            key: if key.is_empty() { "(root)".into() } else { key },
            origin,
            message: err.kind.to_string(),
        }
    }
}

/// Where configuration files are read from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Directory of `default.toml` and `<env>.toml` (`CLEAVE_CONFIG_DIR`, default `config`).
    pub dir: PathBuf,
    /// Environment name selecting `<env>.toml` (`CLEAVE_ENV`).
    pub env: Option<String>,
    /// An extra file given on the command line; it must exist.
    pub file: Option<PathBuf>,
}

impl ConfigSources {
    /// Reads `CLEAVE_CONFIG_DIR` and `CLEAVE_ENV`, plus the explicit `file`.
    pub fn from_env(file: Option<PathBuf>) -> Self {
        Self {
            dir: std::env::var_os("CLEAVE_CONFIG_DIR")
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            env: std::env::var("CLEAVE_ENV").ok().filter(|e| !e.is_empty()),
            file,
        }
    }
}

/// Builds the layered figment (without command-line flags; merge those on top).
///
/// # Errors
/// When `CLEAVE_ENV` names a file that does not exist, or `--config` names a missing file.
pub fn layered<D: Serialize>(
    defaults: &D,
    sources: &ConfigSources,
) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Named::new(
        "built-in default",
        Serialized::defaults(defaults),
    ));
    // default.toml is optional (a container may ship none); the others were asked for.
    let default_file = sources.dir.join("default.toml");
    if default_file.is_file() {
        figment = figment.merge(Toml::file_exact(default_file));
    }
    if let Some(env) = &sources.env {
        let path = sources.dir.join(format!("{env}.toml"));
        require_file(&path, "CLEAVE_ENV", "env var CLEAVE_ENV")?;
        figment = figment.merge(Toml::file_exact(path));
    }
    if let Some(file) = &sources.file {
        require_file(file, "--config", "the command line")?;
        figment = figment.merge(Toml::file_exact(file));
    }
    Ok(figment.merge(
        Env::prefixed("CLEAVE_")
            .filter(|k| k.as_str().contains("__"))
            .split("__"),
    ))
}

fn require_file(path: &Path, key: &str, origin: &str) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ConfigError {
            key: key.to_owned(),
            origin: origin.to_owned(),
            message: format!("configuration file {} does not exist", path.display()),
        })
    }
}

/// A provider under a name of our choosing, so origins read "built-in default" or
/// "command line" rather than a Rust type name.
pub struct Named<P> {
    name: &'static str,
    inner: P,
}

impl<P: Provider> Named<P> {
    /// Wraps `inner`, reporting its values as coming from `name`.
    pub fn new(name: &'static str, inner: P) -> Self {
        Self { name, inner }
    }
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// Where the value of `key` came from, in words.
pub fn origin_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map_or_else(|| "built-in default".to_owned(), |md| describe(md, key))
}

fn describe(md: &Metadata, key: &str) -> String {
    match &md.source {
        Some(Source::File(path)) => format!("file {}", path.display()),
        // Our env provider maps CLEAVE_A__B to a.b; map back (figment's own interpolation
        // does not know about the split).
        _ if md.name.contains("environment") => {
            format!("env var CLEAVE_{}", key.to_uppercase().replace('.', "__"))
        }
        _ => md.name.to_string(),
    }
}

/// Every leaf key of the effective configuration with its value (secrets redacted) and origin,
/// sorted by key: what `cleave config show` prints.
///
/// # Errors
/// When the merged configuration cannot be read.
pub fn effective(figment: &Figment) -> Result<Vec<(String, String, String)>, ConfigError> {
    let dict: Dict = figment
        .extract()
        .map_err(|e| ConfigError::from_figment(e, figment))?;
    let mut out = Vec::new();
    walk(figment, "", &Value::from(dict), &mut out);
    out.sort();
    Ok(out)
}

fn walk(figment: &Figment, prefix: &str, value: &Value, out: &mut Vec<(String, String, String)>) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(figment, &key, v, out);
            }
        }
        leaf => {
            let shown = match leaf {
                Value::String(_, s) => format!("{s:?}"),
                other => serde_json::to_string(other).unwrap_or_else(|_| "?".into()),
            };
            out.push((
                prefix.to_owned(),
                redact(prefix, &shown),
                origin_of(figment, prefix),
            ));
        }
    }
}

/// Hides secrets: values of keys that name a secret, and passwords inside urls.
pub fn redact(key: &str, value: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if ["password", "secret", "token", "private_key", "api_key"]
        .iter()
        .any(|s| last.contains(s))
    {
        return "\"[redacted]\"".to_owned();
    }
    redact_url_password(value)
}

/// `postgres://user:pw@host/db` becomes `postgres://user:[redacted]@host/db`.
pub fn redact_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return value.to_owned();
    };
    format!(
        "{}{}:[redacted]{}",
        &value[..scheme_end + 3],
        &userinfo[..colon],
        &value[scheme_end + 3 + at..]
    )
}

/// Extracts `[modules.<name>]` as `T` (its default when the section is absent), with error
/// keys in full.
///
/// # Errors
/// [`ConfigError`] naming the bad key and its origin.
pub fn section<T: DeserializeOwned + Default>(
    figment: &Figment,
    name: &str,
) -> Result<T, ConfigError> {
    let key = format!("modules.{name}");
    if figment.find_value(&key).is_err() {
        return Ok(T::default());
    }
    figment.focus(&key).extract().map_err(|e| {
        let mut err = ConfigError::from_figment(e, figment);
        err.key = if err.key == "(root)" {
            key.clone()
        } else {
            format!("{key}.{}", err.key)
        };
        err.origin = origin_of(figment, &err.key);
        err
    })
}

/// A module's own settings: its section minus `extra_keys` (those every section may have),
/// refusing unknown keys.
///
/// # Errors
/// [`ConfigError`] naming the first unknown or bad key and its origin.
pub fn module_section<T: DeserializeOwned + Default + Serialize>(
    figment: &Figment,
    name: &str,
    extra_keys: &[&str],
) -> Result<T, ConfigError> {
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if let Ok(Value::Dict(_, dict)) = figment.find_value(&format!("modules.{name}")) {
        for key in dict.keys() {
            if !extra_keys.contains(&key.as_str()) && !known.contains(key) {
                let mut all: Vec<&str> = extra_keys.to_vec();
                all.extend(known.iter().map(String::as_str));
                return Err(ConfigError::at(
                    figment,
                    &format!("modules.{name}.{key}"),
                    format!("unknown key; [modules.{name}] takes: {}", all.join(", ")),
                ));
            }
        }
    }
    let value: T = section(figment, name)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:[redacted]@db:5432/shop"
        );
        assert_eq!(
            redact_url_password("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
        assert_eq!(
            redact_url_password("sqlite://data/x.db"),
            "sqlite://data/x.db"
        );
        assert_eq!(redact("auth.client_secret", "\"abc\""), "\"[redacted]\"");
    }
}
