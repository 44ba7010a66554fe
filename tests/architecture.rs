//! Module boundaries, checked on the real dependency graph (`cargo metadata`):
//!
//! - `cleave-kernel` and `cleave-migrations` depend on no workspace crate;
//! - a `<m>-api` crate depends only on the kernel;
//! - a module `<m>` depends only on the kernel, `<m>-api`, and `<x>-api` for each `x` in its
//!   `[package.metadata.module] allowed-dependencies` (tests may add the migrations), or in
//!   its `subscribes-to` (modules whose events it consumes: it may use their event types,
//!   and never calls them, so they are not run-time requirements);
//! - allowed dependencies name real modules, form no cycle, and match what the module
//!   declares at run time (`ModuleSpec::requires`), which placement validation relies on;
//! - only the root `cleave` crate names module implementations.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

struct Crate {
    deps: Vec<(String, bool)>, // (workspace dependency, is dev-dependency)
    allowed: Option<Vec<String>>,
    subscribes: Vec<String>,
}

/// Every rule broken by the workspace described by `meta`, in words.
fn violations(meta: &Value) -> Vec<String> {
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let mut crates = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().expect("name").to_owned();
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter_map(|d| {
                let dep = d["name"].as_str()?.to_owned();
                members.contains(&dep).then(|| (dep, d["kind"] == "dev"))
            })
            .collect();
        let allowed = p["metadata"]["module"]["allowed-dependencies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            });
        let subscribes = p["metadata"]["module"]["subscribes-to"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        crates.insert(
            name,
            Crate {
                deps,
                allowed,
                subscribes,
            },
        );
    }
    let modules: BTreeSet<String> = crates
        .iter()
        .filter(|(_, c)| c.allowed.is_some())
        .map(|(n, _)| n.clone())
        .collect();

    let mut found = Vec::new();
    for (name, c) in &crates {
        let mut permitted: BTreeSet<String> = BTreeSet::new();
        let mut dev_extra: BTreeSet<String> = BTreeSet::new();
        if name == "cleave" {
            continue;
        } else if name == "cleave-kernel" || name == "cleave-migrations" {
        } else if name.ends_with("-api") {
            permitted.insert("cleave-kernel".into());
        } else if let Some(allowed) = &c.allowed {
            permitted.insert("cleave-kernel".into());
            permitted.insert(format!("{name}-api"));
            for x in allowed {
                if !modules.contains(x) {
                    found.push(format!("{name} allows unknown module {x}"));
                }
                permitted.insert(format!("{x}-api"));
            }
            for x in &c.subscribes {
                if !modules.contains(x) {
                    found.push(format!("{name} subscribes to unknown module {x}"));
                }
                permitted.insert(format!("{x}-api"));
            }
            dev_extra.insert("cleave-migrations".into());
        } else {
            found.push(format!(
                "{name} is neither kernel, migrations, an -api crate nor a module"
            ));
            continue;
        }
        for (dep, dev) in &c.deps {
            let ok = permitted.contains(dep) || (*dev && dev_extra.contains(dep));
            if !ok {
                let kind = if *dev { "dev-dependency" } else { "dependency" };
                found.push(format!(
                    "{name} has a {kind} on {dep}, which it may not use"
                ));
            }
        }
    }

    // The allowed-dependency graph must be acyclic.
    let graph: BTreeMap<&str, Vec<&str>> = crates
        .iter()
        .filter_map(|(n, c)| {
            c.allowed
                .as_ref()
                .map(|a| (n.as_str(), a.iter().map(String::as_str).collect()))
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        found: &mut Vec<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == n) {
            found.push(format!(
                "dependency cycle: {} -> {n}",
                path[i..].join(" -> ")
            ));
            return;
        }
        path.push(n);
        for next in graph.get(n).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn package_mut<'a>(meta: &'a mut Value, name: &str) -> &'a mut Value {
    meta["packages"]
        .as_array_mut()
        .expect("packages")
        .iter_mut()
        .find(|p| p["name"] == name)
        .expect("package")
}

#[test]
fn the_workspace_respects_module_boundaries() {
    let found = violations(&metadata());
    assert!(
        found.is_empty(),
        "boundary violations:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_declares_the_same_requirements_at_build_and_run_time() {
    let meta = metadata();
    for spec in cleave::wiring::SPECS {
        let pkg = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["name"] == spec.name)
            .unwrap_or_else(|| panic!("no crate for module {}", spec.name));
        let allowed: Vec<&str> = pkg["metadata"]["module"]["allowed-dependencies"]
            .as_array()
            .expect("allowed-dependencies")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(allowed, spec.requires, "module {}", spec.name);
    }
}

#[test]
fn a_module_depending_on_another_modules_implementation_is_caught() {
    let mut meta = metadata();
    let rec = package_mut(&mut meta, "recommendation");
    rec["dependencies"]
        .as_array_mut()
        .expect("deps")
        .push(serde_json::json!({"name": "catalog", "kind": null}));
    let found = violations(&meta);
    assert!(
        found
            .iter()
            .any(|v| v == "recommendation has a dependency on catalog, which it may not use"),
        "{found:?}"
    );
}

#[test]
fn calling_a_module_that_is_not_allowed_is_caught() {
    let mut meta = metadata();
    let cart = package_mut(&mut meta, "cart");
    cart["dependencies"]
        .as_array_mut()
        .expect("deps")
        .push(serde_json::json!({"name": "catalog-api", "kind": null}));
    let found = violations(&meta);
    assert!(
        found
            .iter()
            .any(|v| v.contains("cart has a dependency on catalog-api")),
        "{found:?}"
    );
}

#[test]
fn an_api_crate_depending_on_an_implementation_is_caught() {
    let mut meta = metadata();
    let api = package_mut(&mut meta, "recommendation-api");
    api["dependencies"]
        .as_array_mut()
        .expect("deps")
        .push(serde_json::json!({"name": "catalog", "kind": "dev"}));
    let found = violations(&meta);
    assert!(
        found
            .iter()
            .any(|v| v.contains("recommendation-api has a dev-dependency on catalog")),
        "{found:?}"
    );
}

#[test]
fn a_cycle_of_allowed_dependencies_is_caught() {
    let mut meta = metadata();
    package_mut(&mut meta, "catalog")["metadata"]["module"]["allowed-dependencies"] =
        serde_json::json!(["recommendation"]);
    let found = violations(&meta);
    assert!(
        found.iter().any(|v| v.starts_with("dependency cycle")),
        "{found:?}"
    );
}
