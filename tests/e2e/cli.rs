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
fn replicas_are_a_list_of_urls_checked_like_one_and_discovery_is_named() {
    let listed = cleave(
        &["modules"],
        &[(
            "CLEAVE_MODULES__CATALOG__URLS",
            r#"["http://catalog-a:8080", "http://catalog-b:8080"]"#,
        )],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stdout(&listed).contains("remote at http://catalog-a:8080/"),
        "{}",
        stdout(&listed)
    );
    for (env, key, says) in [
        (
            vec![
                ("CLEAVE_MODULES__CATALOG__URL", "http://a:1"),
                ("CLEAVE_MODULES__CATALOG__URLS", r#"["http://b:1"]"#),
            ],
            "modules.catalog.urls",
            "not both",
        ),
        (
            vec![("CLEAVE_MODULES__CATALOG__URLS", "[]")],
            "modules.catalog.urls",
            "is empty",
        ),
        (
            vec![(
                "CLEAVE_MODULES__CATALOG__URLS",
                r#"["http://a:1", "ftp://b"]"#,
            )],
            "modules.catalog.urls",
            "\"ftp://b\": must be an http://, https://, grpc:// or grpcs:// url",
        ),
        (
            vec![
                ("CLEAVE_MODULES__CART__URL", "grpc://cart:9090"),
                ("CLEAVE_MODULES__CART__PROTOCOL", "boutique"),
            ],
            "modules.cart.protocol",
            "Cleave calls only recommendation as Online Boutique's services",
        ),
        (
            vec![
                ("CLEAVE_MODULES__CART__URL", "grpc://cart:9090"),
                ("CLEAVE_MODULES__CART__PROTOCOL", "rest"),
            ],
            "modules.cart.protocol",
            "is rest, but the module's url is a grpc:// or grpcs:// one",
        ),
        (
            vec![(
                "CLEAVE_MODULES__CART__URLS",
                r#"["grpc://a:1", "http://b:2"]"#,
            )],
            "modules.cart.urls",
            "mixes grpc(s):// and http(s):// urls",
        ),
        (
            vec![("CLEAVE_DISCOVERY__KIND", "consul")],
            "discovery.kind",
            "static",
        ),
        (
            vec![("CLEAVE_DISCOVERY__ETCD_ENDPOINTS", r#"["127.0.0.1:2379"]"#)],
            "discovery.etcd_endpoints",
            "not an http(s) url",
        ),
        (
            vec![("CLEAVE_DISCOVERY__ETCD_PREFIX", "/")],
            "discovery.etcd_prefix",
            "key path",
        ),
        (
            vec![("CLEAVE_DISCOVERY__LEASE_TTL_SECS", "1")],
            "discovery.lease_ttl_secs",
            "at least 2",
        ),
        (
            vec![("CLEAVE_DISCOVERY__REFRESH_SECS", "0")],
            "discovery.refresh_secs",
            "",
        ),
    ] {
        let out = cleave(&["config", "check"], &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(key), "{env:?}: {err}");
        assert!(err.contains(says), "{env:?}: {err}");
        assert!(
            err.contains(&env[env.len() - 1].0.to_owned()),
            "names its origin: {err}"
        );
    }
    // A process registered in etcd must say where it is reached when it listens everywhere.
    let out = cleave(
        &["config", "check"],
        &[
            ("CLEAVE_SERVER__LISTEN", "0.0.0.0:8080"),
            ("CLEAVE_DISCOVERY__KIND", "etcd"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("discovery.advertise_url") && err.contains("wildcard"),
        "{err}"
    );
}

#[test]
fn the_edge_needs_every_module_placed_somewhere_it_can_reach() {
    let out = cleave(
        &["edge", "nginx"],
        &[("CLEAVE_MODULES__CATALOG__URL", "http://catalog:8080")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the edge hosts no module"), "{err}");
    assert!(
        err.contains("identity") && !err.contains("catalog,"),
        "{err}"
    );
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
    // Production names its database: no silent fall-back to a local SQLite file.
    let out = cleave(
        &["config", "check"],
        &[
            ("CLEAVE_ENV", "production"),
            ("CLEAVE_CONFIG_DIR", config_dir),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database.require_url") && stderr(&out).contains("production.toml"),
        "{}",
        stderr(&out)
    );
    let out = cleave(
        &["config", "show"],
        &[
            ("CLEAVE_ENV", "production"),
            ("CLEAVE_CONFIG_DIR", config_dir),
            ("CLEAVE_SERVER__MODULES", "catalog,cart"),
            ("CLEAVE_DATABASE__URL", "postgres://cleave@db/cleave"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secure = text
        .lines()
        .find(|l| l.starts_with("modules.storefront.secure_cookies"))
        .expect("secure_cookies");
    assert!(
        secure.contains("true") && secure.contains("production.toml"),
        "{secure}"
    );
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
    let out = cleave(
        &["modules"],
        &[
            ("CLEAVE_SERVER__MODULES", "catalog,cart"),
            ("CLEAVE_MODULES__IDENTITY__URL", "http://identity:8080"),
        ],
    );
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
    // One certificate for a process hosting several modules (the placement runner's
    // processes present these, and are told apart by every module they name).
    let both = cleave(
        &["certs", "issue", "--module", "storefront,cart", "--dir", d],
        &[],
    );
    assert!(both.status.success(), "{}", stderr(&both));
    assert!(dir.path().join("storefront+cart.pem").exists());
    let unknown = cleave(&["certs", "issue", "--module", "nosuch", "--dir", d], &[]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown module"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn config_check_refuses_what_serve_would_trip_over_naming_key_and_origin() {
    let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    for (env, key, says) in [
        // One underscore sets nothing: named, with the key it was probably meant for.
        (
            ("CLEAVE_SERVER_LISTEN", "127.0.0.1:9000"),
            "CLEAVE_SERVER_LISTEN",
            "did you mean CLEAVE_SERVER__LISTEN (server.listen)",
        ),
        (("CLEAVE_LOG__LEVEL", "verbose"), "log.level", "not a level"),
        (
            ("CLEAVE_DATABASE__URL", "mysql://shop@db/shop"),
            "database.url",
            "unsupported database \"mysql\"",
        ),
        (
            ("CLEAVE_MODULES__STOREFRONT__DEFAULT_CURRENCY", "XYZ"),
            "modules.storefront.default_currency",
            "not a supported currency",
        ),
    ] {
        let out = cleave(
            &["config", "check"],
            &[env, ("CLEAVE_CONFIG_DIR", config_dir)],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(key) && err.contains(says), "{env:?}: {err}");
        // serve refuses the same, before it opens anything.
        let served = cleave(&["serve"], &[env, ("CLEAVE_CONFIG_DIR", config_dir)]);
        assert_eq!(
            served.status.code(),
            Some(2),
            "{env:?}: {}",
            stderr(&served)
        );
    }
    let fine = cleave(
        &["config", "check"],
        &[("CLEAVE_LOG__LEVEL", "info,cleave_kernel=debug")],
    );
    assert!(fine.status.success(), "{}", stderr(&fine));
}

#[test]
fn usage_errors_exit_2_with_a_message_that_holds_together() {
    for (args, says) in [
        (
            &["token", "issue", "--sub", "x", "--ttl", "0"][..],
            "--ttl must be 1 to 900",
        ),
        (
            &["migrate", "--module", "nosuch"][..],
            "unknown module \"nosuch\"",
        ),
        (&["migrate", "down", "--module", "catalog"][..], "say --yes"),
        (
            &["certs", "issue", "--module", "nosuch"][..],
            "unknown module",
        ),
        (
            &[
                "user",
                "create",
                "--email",
                "a@b.example",
                "--role",
                "Bad Role",
            ][..],
            "is not a role name",
        ),
        (&["no-such-command"][..], "unrecognized subcommand"),
    ] {
        let out = cleave(args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // `events` (the outbox) is not listed as a module; it is migrated by that name.
    let err = stderr(&cleave(&["migrate", "--module", "nosuch"], &[]));
    let listed = err
        .split("modules with tables: ")
        .nth(1)
        .unwrap_or_default();
    assert!(
        !listed.starts_with("events") && listed.contains("(and events, the event outbox)"),
        "{err}"
    );
    let events = cleave(&["migrate", "--module", "events"], &[]);
    assert!(events.status.success(), "{}", stderr(&events));
}

#[test]
fn version_completions_and_migration_status() {
    let version = stdout(&cleave(&["--version"], &[]));
    let revision = version
        .trim()
        .rsplit_once('(')
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap_or_default();
    assert!(
        revision == "unknown"
            || (revision.len() == 12 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    assert!(
        version.starts_with(concat!("cleave ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let bash = cleave(&["completions", "bash"], &[]);
    assert!(
        bash.status.success() && stdout(&bash).contains("_cleave()"),
        "{}",
        stderr(&bash)
    );

    // status: every migration pending on a fresh database, applied after migrate; down, with
    // --yes, reverts the last one only.
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let db = [("CLEAVE_DATABASE__URL", url.as_str())];
    let status = |expect: &str| {
        let out = cleave(&["migrate", "status", "--module", "catalog"], &db);
        assert!(out.status.success(), "{}", stderr(&out));
        let states: Vec<String> = stdout(&out)
            .lines()
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(states.join(","), expect, "{}", stdout(&out));
    };
    status("pending,pending");
    assert!(
        cleave(&["migrate", "--module", "catalog"], &db)
            .status
            .success()
    );
    status("applied,applied");
    let down = cleave(&["migrate", "down", "--module", "catalog", "--yes"], &db);
    assert!(down.status.success(), "{}", stderr(&down));
    status("applied,pending");
}

#[test]
fn a_placement_that_could_not_verify_tokens_or_prove_a_module_is_refused_naming_the_keys() {
    // Nobody to verify tokens with: every signed-in user would be refused.
    let out = cleave(&["config", "check", "--modules", "catalog"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CLEAVE_MODULES__IDENTITY__URL"),
        "{}",
        stderr(&out)
    );
    let identity = ("CLEAVE_MODULES__IDENTITY__URL", "http://identity:8080");
    let fine = cleave(&["config", "check", "--modules", "catalog"], &[identity]);
    assert!(fine.status.success(), "{}", stderr(&fine));
    // Checkout charging a payment process over plain http, without its certificate.
    let out = cleave(
        &[
            "config",
            "check",
            "--modules",
            "catalog,currency,cart,shipping,checkout",
        ],
        &[
            identity,
            ("CLEAVE_MODULES__PAYMENT__URL", "http://payment:8080"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("payment.charge")
            && err.contains("https://")
            && err.contains("remote.client_cert_file")
            && err.contains("cleave certs issue --module checkout"),
        "{err}"
    );
}
