//! The command line: configuration errors that name key and origin, placement refused at
//! start-up, `config show` with secrets redacted, `modules`, `migrate`.

use std::process::{Command, Output};

fn cleave(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.args(args).current_dir(dir.path());
    // Only what the test sets: nothing from the environment it runs in.
    for (key, _) in std::env::vars() {
        if key.starts_with("CLEAVE_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLEAVE_LOG__FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cleave")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_bad_value_is_reported_with_its_key_and_env_var() {
    let out = cleave(
        &["config", "check"],
        &[("CLEAVE_SERVER__LISTEN", "not-an-address")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("server.listen"), "{err}");
    assert!(err.contains("CLEAVE_SERVER__LISTEN"), "{err}");
}

#[test]
fn an_unknown_key_in_a_file_is_reported_with_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[modules.catalog]\nrefresh_sec = 5\n").expect("write");
    let out = cleave(
        &["config", "check", "--config", file.to_str().expect("utf8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("modules.catalog.refresh_sec"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    assert!(
        err.contains("refresh_secs"),
        "the message lists the keys it takes: {err}"
    );
}

#[test]
fn an_invalid_module_url_and_an_unknown_module_are_refused() {
    let out = cleave(
        &["config", "check"],
        &[("CLEAVE_MODULES__CART__URL", "ftp://x")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("modules.cart.url"),
        "{}",
        stderr(&out)
    );
    let out = cleave(
        &["config", "check"],
        &[("CLEAVE_MODULES__CARTS__URL", "http://x:1")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown module"), "{}", stderr(&out));
}

#[test]
fn serving_a_module_without_its_requirement_fails_at_start_up() {
    let out = cleave(
        &[
            "serve",
            "--modules",
            "recommendation",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("recommendation requires catalog"), "{err}");
    assert!(err.contains("modules.catalog.url"), "{err}");
    let out = cleave(
        &[
            "serve",
            "--modules",
            "cart,nonsense",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown module \"nonsense\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_show_redacts_secrets_and_names_origins() {
    let out = cleave(
        &["config", "show"],
        &[(
            "CLEAVE_DATABASE__URL",
            "postgres://shop:hunter2@db:5432/shop",
        )],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("postgres://shop:[redacted]@db:5432/shop"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("database.url"))
        .expect("database.url line");
    assert!(line.contains("env var CLEAVE_DATABASE__URL"), "{line}");
    let line = text
        .lines()
        .find(|l| l.starts_with("server.listen"))
        .expect("listen line");
    assert!(
        line.contains("127.0.0.1:8080") && line.contains("built-in default"),
        "{line}"
    );
}

#[test]
fn modules_lists_placement_and_requirements() {
    let out = cleave(
        &["modules"],
        &[("CLEAVE_MODULES__CATALOG__URL", "http://catalog:8080")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let catalog = text
        .lines()
        .find(|l| l.starts_with("catalog"))
        .expect("catalog line");
    assert!(
        catalog.contains("remote at http://catalog:8080/"),
        "{catalog}"
    );
    let rec = text
        .lines()
        .find(|l| l.starts_with("recommendation"))
        .expect("rec line");
    assert!(
        rec.contains("hosted here") && rec.contains("catalog"),
        "{rec}"
    );
}

#[test]
fn migrate_creates_the_tables_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let env = [("CLEAVE_DATABASE__URL", url.as_str())];
    let out = cleave(&["migrate"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let migrated = stdout(&out);
    for set in [
        "identity", "catalog", "currency", "cart", "checkout", "events",
    ] {
        assert!(migrated.contains(set), "{migrated}");
    }
    let again = cleave(&["migrate", "--module", "cart"], &env);
    assert!(again.status.success(), "{}", stderr(&again));
    let unknown = cleave(&["migrate", "--module", "carts"], &env);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("unknown module"));
}

#[test]
fn the_container_settings_come_from_the_production_file_and_env() {
    let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let out = cleave(
        &["config", "show"],
        &[
            ("CLEAVE_ENV", "production"),
            ("CLEAVE_CONFIG_DIR", config_dir),
            ("CLEAVE_SERVER__MODULES", "catalog,cart"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let listen = text
        .lines()
        .find(|l| l.starts_with("server.listen"))
        .expect("listen");
    assert!(
        listen.contains("0.0.0.0:8080") && listen.contains("production.toml"),
        "{listen}"
    );
    let modules = text
        .lines()
        .find(|l| l.starts_with("server.modules"))
        .expect("modules");
    assert!(
        modules.contains("env var CLEAVE_SERVER__MODULES"),
        "{modules}"
    );
    let out = cleave(&["modules"], &[("CLEAVE_SERVER__MODULES", "catalog,cart")]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("catalog") && l.contains("hosted here")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("currency") && l.contains("not available")),
        "{text}"
    );

    let out = cleave(
        &["config", "check"],
        &[("CLEAVE_ENV", "staging"), ("CLEAVE_CONFIG_DIR", config_dir)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("staging.toml does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn certs_make_a_ca_once_and_certificates_only_for_modules_of_the_deployment() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8 path");
    let init = cleave(&["certs", "init", "--dir", d], &[]);
    assert!(init.status.success(), "{}", stderr(&init));
    for file in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key is its owner's only: {mode:o}");
    }
    // A second init would orphan every certificate issued so far: refused.
    let again = cleave(&["certs", "init", "--dir", d], &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a CA"),
        "{}",
        stderr(&again)
    );
    let issued = cleave(&["certs", "issue", "--module", "checkout", "--dir", d], &[]);
    assert!(issued.status.success(), "{}", stderr(&issued));
    assert!(dir.path().join("checkout.pem").exists());
    let unknown = cleave(&["certs", "issue", "--module", "nosuch", "--dir", d], &[]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown module"),
        "{}",
        stderr(&unknown)
    );
}
