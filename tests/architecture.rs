//! Module boundaries, checked on the real dependency graph (`cargo metadata`):
//!
//! - `cleave-kernel` depends on no workspace crate but its macros (`cleave-macros`);
//!   `cleave-macros`, `cleave-domain` and `cleave-migrations` depend on none;
//! - a `<m>-api` crate depends only on the kernel and the shop's domain values;
//! - a module `<m>` depends only on the kernel, the domain, `<m>-api`, and `<x>-api` for each
//!   `x` in its
//!   `[package.metadata.module] allowed-dependencies` (tests may add the migrations), or in
//!   its `subscribes-to` (modules whose events it consumes: it may use their event types,
//!   and never calls them, so they are not run-time requirements);
//! - allowed dependencies name real modules, form no cycle, and match what the module
//!   declares at run time (`Module::REQUIRES`, `Module::SUBSCRIBES`), which placement
//!   validation relies on;
//! - every module crate is in the composition root's one list (`src/modules.rs`), and the
//!   list names no other, each after the modules it requires;
//! - only the root `cleave` crate names module implementations;
//! - the kernel's files, and the root's, import each other in one direction (no loop).

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
        } else if name == "cleave-kernel" {
            permitted.insert("cleave-macros".into());
        } else if ["cleave-macros", "cleave-domain", "cleave-migrations"].contains(&name.as_str()) {
        } else if name.ends_with("-api") {
            permitted.insert("cleave-kernel".into());
            permitted.insert("cleave-domain".into());
        } else if let Some(allowed) = &c.allowed {
            permitted.insert("cleave-kernel".into());
            permitted.insert("cleave-domain".into());
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
            // A module's tests may turn on its own `test-util` reads.
            let ok = permitted.contains(dep) || (*dev && (dev_extra.contains(dep) || dep == name));
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
    found.extend(
        cycles(&graph)
            .into_iter()
            .map(|c| format!("dependency cycle: {c}")),
    );
    found
}

/// The cycles of `graph`, each as a path `a -> b -> a`.
fn cycles(graph: &BTreeMap<&str, Vec<&str>>) -> Vec<String> {
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
            found.push(format!("{} -> {n}", path[i..].join(" -> ")));
            return;
        }
        path.push(n);
        for next in graph.get(n).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(n);
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, graph, &mut Vec::new(), &mut done, &mut found);
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

fn metadata_list<'a>(pkg: &'a Value, key: &str) -> Vec<&'a str> {
    pkg["metadata"]["module"][key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_module_declares_the_same_requirements_at_build_and_run_time() {
    let meta = metadata();
    for entry in &cleave::modules::MODULES {
        let spec = entry.spec();
        let pkg = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["name"] == spec.name)
            .unwrap_or_else(|| panic!("no crate for module {}", spec.name));
        assert_eq!(
            metadata_list(pkg, "allowed-dependencies"),
            spec.requires,
            "module {}: Cargo.toml allowed-dependencies vs Module::REQUIRES",
            spec.name
        );
        assert_eq!(
            metadata_list(pkg, "subscribes-to"),
            entry.subscribes(),
            "module {}: Cargo.toml subscribes-to vs Module::SUBSCRIBES",
            spec.name
        );
    }
}

/// The names the list lacks and the names it has without a module crate.
fn list_mismatch(meta: &Value, listed: &[&str]) -> (Vec<String>, Vec<String>) {
    let crates: BTreeSet<String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["metadata"]["module"]["allowed-dependencies"].is_array())
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let listed: BTreeSet<String> = listed.iter().map(|n| (*n).to_owned()).collect();
    (
        crates.difference(&listed).cloned().collect(),
        listed.difference(&crates).cloned().collect(),
    )
}

#[test]
fn the_module_list_holds_every_module_crate_and_nothing_else() {
    let (unlisted, unknown) = list_mismatch(&metadata(), &cleave::modules::names());
    assert!(
        unlisted.is_empty() && unknown.is_empty(),
        "module crates missing from src/modules.rs: {unlisted:?}; listed without a crate: {unknown:?}"
    );
}

#[test]
fn a_module_crate_missing_from_the_list_is_caught() {
    let mut names = cleave::modules::names();
    names.retain(|n| *n != "ads");
    names.push("loyalty");
    let (unlisted, unknown) = list_mismatch(&metadata(), &names);
    assert_eq!(unlisted, vec!["ads".to_owned()]);
    assert_eq!(unknown, vec!["loyalty".to_owned()]);
}

#[test]
fn every_module_is_listed_after_the_modules_it_requires() {
    let names = cleave::modules::names();
    for (i, entry) in cleave::modules::MODULES.iter().enumerate() {
        for req in entry.spec().requires {
            let at = names.iter().position(|n| n == req);
            assert!(
                at.is_some_and(|at| at < i),
                "{} requires {req}, which must come before it in src/modules.rs",
                entry.spec().name
            );
        }
    }
}

/// `crate::<module>` references of each `.rs` file under `dir`, by module name (the file
/// name, or the folder of a `mod.rs`); a module's submodules count as the module.
fn imports(dir: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(dir).expect("under dir");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_owned())
            .expect("module name");
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        // Tests inside a file may reach anywhere; comments (doc links) import nothing.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `cleave_kernel::` is not `crate::`
            }
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

/// The import loops of `graph`, as paths.
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let graph: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    cycles(&graph)
}

#[test]
fn kernel_and_root_files_import_each_other_without_loops() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["modules/kernel/src", "src"] {
        let found = loops(&imports(&root.join(dir)));
        assert!(found.is_empty(), "import loops in {dir}: {found:?}");
    }
}

#[test]
fn an_import_loop_is_caught() {
    let mut graph = imports(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    graph
        .entry("modules".into())
        .or_default()
        .insert("wiring".into());
    graph
        .entry("wiring".into())
        .or_default()
        .insert("modules".into());
    assert!(!loops(&graph).is_empty());
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
