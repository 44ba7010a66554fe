//! `cleave deploy`: the committed deployment files are what the placements generate; a bad
//! placement file is refused naming the key; the network policies follow the module graph;
//! and the generated compose file, each service's command and environment started as a local
//! process (loopback ports for service names, the test's certificates for the mounted ones,
//! the machine's PostgreSQL or SQLite files and NATS for the compose services), answers the
//! end-to-end body as every module in one process does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleave::deploy::{self, PlacementFile};
use cleave_kernel::testing::TestDb;
use serde_json::Value;

use crate::events::{nats_addr, nats_answers, unique_prefix};
use crate::helpers::{Pki, free_ports, sqlite_in};
use crate::placements::{Deployment, body, one_process};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every committed placement file, as the generated files name it (relative to the root).
fn placements() -> Vec<PathBuf> {
    let mut all = vec![PathBuf::from("deploy/placement.toml")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/placements"))
        .expect("deploy/placements")
        .map(|e| PathBuf::from("deploy/placements").join(e.expect("entry").file_name()))
        .collect();
    more.sort();
    all.extend(more);
    all
}

fn load(relative: &Path) -> PlacementFile {
    PlacementFile::load(&root().join(relative))
        .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn committed_deployment_files_are_what_the_placements_generate() {
    let fix = "regenerate them: `just deploy-files`";
    let mut expected: BTreeMap<PathBuf, String> = BTreeMap::new();
    for relative in placements() {
        let p = load(&relative);
        expected.insert(
            PathBuf::from(format!("deploy/compose/{}.yaml", p.name)),
            deploy::compose(&p, &relative),
        );
        for (path, content) in deploy::k8s(&p, &relative) {
            expected.insert(Path::new("deploy/k8s").join(path), content);
        }
    }
    for (path, want) in &expected {
        let have = std::fs::read_to_string(root().join(path))
            .unwrap_or_else(|e| panic!("{}: {e}; {fix}", path.display()));
        assert!(
            have == *want,
            "{} is not what its placement generates; {fix}",
            path.display()
        );
    }
    let mut committed: Vec<PathBuf> = files_under(&root().join("deploy/compose"))
        .into_iter()
        .chain(files_under(&root().join("deploy/k8s")))
        .map(|p| p.strip_prefix(root()).expect("under root").to_path_buf())
        .collect();
    committed.sort();
    for path in committed {
        assert!(
            expected.contains_key(&path),
            "{} comes from no placement; remove it or {fix}",
            path.display()
        );
    }
}

/// A placement file: `database`, `broker`, then each group as (name, module list in TOML,
/// extra lines).
fn placement_text(database: &str, broker: &str, groups: &[(&str, String, &str)]) -> String {
    let mut text = format!(
        "name = \"t\"\nimage = \"cleave:t\"\ndatabase = \"{database}\"\nbroker = \"{broker}\"\n"
    );
    for (name, modules, extra) in groups {
        text.push_str(&format!(
            "[[group]]\nname = \"{name}\"\nmodules = [{modules}]\n{extra}"
        ));
    }
    text
}

#[test]
fn a_bad_placement_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let listed = |except: &str| {
        cleave::modules::names()
            .iter()
            .filter(|m| **m != except)
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = || listed("");
    let cart = || "\"cart\"".to_owned();
    for (label, text, key, says) in [
        (
            "a module twice",
            placement_text("postgres", "nats", &[("a", all(), ""), ("b", cart(), "")]),
            "group[1].modules",
            "cart is placed in two groups",
        ),
        (
            "a module nowhere",
            placement_text("postgres", "nats", &[("a", cart(), "")]),
            "group",
            "no group hosts identity",
        ),
        (
            "an unknown module",
            placement_text("postgres", "nats", &[("a", "\"carts\"".into(), "")]),
            "group[0].modules",
            "unknown module \"carts\"",
        ),
        (
            "replicas of a SQLite file",
            placement_text("sqlite", "in-process", &[("a", all(), "replicas = 2\n")]),
            "group[0].replicas",
            "one replica only",
        ),
        (
            "two groups without a broker",
            placement_text(
                "postgres",
                "in-process",
                &[("a", listed("cart"), ""), ("b", cart(), "")],
            ),
            "broker",
            "do not cross processes",
        ),
        (
            "a group name that is no DNS label",
            placement_text("postgres", "nats", &[("Front_1", all(), "")]),
            "group[0].name",
            "a-z, 0-9 and -",
        ),
        (
            "a misspelt key",
            placement_text("postgres", "nats", &[("a", all(), "replica = 2\n")]),
            "group.0",
            "unknown field",
        ),
    ] {
        let path = dir.path().join("placement.toml");
        std::fs::write(&path, text).expect("write");
        let err = PlacementFile::load(&path)
            .err()
            .unwrap_or_else(|| panic!("{label}: accepted"));
        assert_eq!(err.file, path.display().to_string(), "{label}");
        assert!(err.key.starts_with(key), "{label}: key {:?}", err.key);
        assert!(err.message.contains(says), "{label}: {err}");
    }
}

#[test]
fn network_policies_let_in_only_the_callers_of_the_module_graph() {
    let p = load(Path::new("deploy/placements/per-module.toml"));
    let callers = |callee: &str| {
        let g = p.groups.iter().find(|g| g.name == callee).expect("a group");
        let mut names: Vec<String> = p.callers_of(g).iter().map(|c| c.name.clone()).collect();
        names.sort();
        names
    };
    // Payment: checkout charges, the storefront forwards its routes; nobody else.
    assert_eq!(callers("payment"), ["checkout", "storefront"]);
    assert_eq!(
        callers("catalog"),
        ["checkout", "recommendation", "storefront"]
    );
    // Every process checks tokens with identity.
    assert_eq!(callers("identity").len(), p.groups.len() - 1);
    // The rendered policy says the same.
    let overlay = deploy::k8s_overlay(&p, Path::new("deploy/placements/per-module.toml"));
    let payment = overlay
        .iter()
        .find(|(path, _)| path.ends_with("cleave-payment.yaml"))
        .map(|(_, text)| text.clone())
        .expect("payment's manifests");
    let policy = payment
        .split("---\n")
        .find(|doc| doc.contains("kind: NetworkPolicy"))
        .expect("a NetworkPolicy");
    let policy: Value = yaml_serde::from_str(policy).expect("yaml");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["checkout", "storefront"])
    );
}

/// A compose service's environment value as a local process needs it: service names to
/// loopback ports, container paths to the files the compose file mounts there, the compose
/// file's PostgreSQL and NATS to the machine's.
struct Localise<'a> {
    ports: &'a BTreeMap<String, u16>,
    mounts: BTreeMap<String, PathBuf>,
}

impl Localise<'_> {
    fn value(&self, service: &str, key: &str, value: &str) -> String {
        if key == "CLEAVE_EVENTS__NATS_URL" {
            return format!("nats://{}", nats_addr());
        }
        if let Some(file) = self.mounts.get(value) {
            return file.display().to_string();
        }
        for (other, port) in self.ports {
            let at = format!("https://{other}:{}", deploy::PORT);
            if value == at {
                return format!("https://127.0.0.1:{port}");
            }
        }
        for other in self.ports.keys() {
            assert!(
                !value.contains(&format!("{other}:")),
                "{service}: {key}={value} names a service this test cannot map"
            );
        }
        value.to_owned()
    }
}

#[tokio::test]
async fn the_compose_file_run_as_local_processes_answers_like_one_process() {
    nats_answers();
    let expected = one_process().await;
    let relative = PathBuf::from("deploy/compose/shop.yaml");
    let compose: Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join(&relative)).expect("the compose file"),
    )
    .expect("yaml");
    let services = compose["services"].as_object().expect("services");
    let shop: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| s["command"][0] == "serve")
        .collect();
    let modules_of = |s: &Value| -> Vec<&'static str> {
        let listed = s["command"][2].as_str().expect("--modules value");
        listed
            .split(',')
            .map(|m| {
                cleave::modules::names()
                    .into_iter()
                    .find(|n| *n == m)
                    .unwrap_or_else(|| panic!("unknown module {m}"))
            })
            .collect()
    };
    let groups: Vec<Vec<&'static str>> = shop.iter().map(|(_, s)| modules_of(s)).collect();
    let pki = Pki::shared_for(&groups);
    let dir = tempfile::tempdir().expect("dir");
    let ports: BTreeMap<String, u16> = shop
        .iter()
        .map(|(n, _)| (*n).clone())
        .zip(free_ports(shop.len()))
        .collect();
    let prefix = unique_prefix();
    let pg_url = std::env::var(cleave_kernel::testing::TEST_DATABASE_URL_ENV).ok();
    let mut pg = Vec::new();
    let mut specs = Vec::new();
    let mut identity_db = String::new();
    for ((name, service), modules) in shop.iter().zip(&groups) {
        // The files the compose file mounts, as `cleave certs` names them.
        let mounts = service["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| {
                let v = v.as_str()?;
                let (source, rest) = v.split_once(':')?;
                let target = rest.split(':').next()?;
                let file = source.strip_prefix("./certs/")?;
                Some((target.to_owned(), pki.path(file)))
            })
            .collect();
        let localise = Localise {
            ports: &ports,
            mounts,
        };
        let db = match &pg_url {
            Some(url) => {
                let db = TestDb::postgres(url).await;
                let url = db.url.clone();
                pg.push(db);
                url
            }
            None => sqlite_in(dir.path(), &format!("{name}.db")),
        };
        if modules.contains(&"identity") {
            identity_db = db.clone();
        }
        // What the image sets, then the service's own environment.
        let mut env = vec![
            ("CLEAVE_ENV".to_owned(), "production".to_owned()),
            (
                "CLEAVE_CONFIG_DIR".to_owned(),
                root().join("config").display().to_string(),
            ),
            (
                "CLEAVE_SERVER__LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[*name]),
            ),
            ("CLEAVE_EVENTS__NATS_PREFIX".to_owned(), prefix.clone()),
        ];
        for (key, value) in service["environment"].as_object().expect("environment") {
            let value = value.as_str().expect("string values");
            let value = if key == "CLEAVE_DATABASE__URL" {
                db.clone()
            } else {
                localise.value(name, key, value)
            };
            env.push((key.clone(), value));
        }
        specs.push((modules.clone(), env));
    }
    let mut d = Deployment::launch(
        format!("{} as local processes", relative.display()),
        specs,
        identity_db,
        Some(prefix),
        pki,
        dir,
        pg,
    );
    let got = body(&mut d).await;
    assert_eq!(got.len(), expected.len());
    for ((label, want), (_, have)) in expected.iter().zip(&got) {
        assert_eq!(have, want, "{}: {label}", relative.display());
    }
    d.stop().await;
}
