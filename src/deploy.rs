//! `cleave deploy`: deployment files generated from a placement file (`deploy/placement.toml`:
//! process groups, the modules each hosts, replicas, the database and the broker), so that
//! what runs where is written once. Two targets: a docker-compose file, and Kubernetes
//! manifests (a kustomize base shared by every placement, an overlay per placement). Both
//! give each process group the same command and environment ([`Group::environment`]): the
//! modules it hosts, where every other module is, its certificates, its database, the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::modules;

/// The port every process listens on inside its container.
pub const PORT: u16 = 8080;
/// Where a container finds its certificates.
pub const TLS_DIR: &str = "/etc/cleave/tls";
/// Where a container keeps its SQLite file (the image's volume).
pub const DATA_DIR: &str = "/var/lib/cleave";
/// What every name this generator gives starts with (services, Deployments, Secrets).
pub const PREFIX: &str = "cleave";
/// The images of the services the compose file adds (tags: see docs/DEPLOYMENT.md).
const POSTGRES_IMAGE: &str = "postgres:17-bookworm";
const NATS_IMAGE: &str = "nats:2.11-alpine";
/// Seconds between SIGTERM and SIGKILL: production's server.drain_secs (5), then
/// server.shutdown_timeout_secs (30), and a margin.
const GRACE_SECS: u64 = 40;

/// Where the process groups' databases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    /// PostgreSQL, one database per group (replicas share it).
    Postgres,
    /// A SQLite file on a volume per group (one replica each).
    Sqlite,
}

/// How events travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Broker {
    /// NATS JetStream (needed as soon as there are two groups).
    Nats,
    /// Inside the one process (one group only).
    InProcess,
}

/// One process group: a Deployment (or compose service) hosting some modules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its name: a DNS label, part of its service name (`cleave-<name>`).
    pub name: String,
    /// The modules it hosts.
    pub modules: Vec<String>,
    /// How many processes run it.
    #[serde(default = "one")]
    pub replicas: u32,
    /// CPU it asks for (a Kubernetes quantity).
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory it asks for and may use (a Kubernetes quantity).
    #[serde(default = "default_memory")]
    pub memory: String,
}

fn one() -> u32 {
    1
}
fn default_cpu() -> String {
    "100m".into()
}
fn default_memory() -> String {
    "256Mi".into()
}
fn default_namespace() -> String {
    PREFIX.into()
}
fn default_nats_url() -> String {
    "nats://nats:4222".into()
}

/// A placement file, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementFile {
    /// Its name: the overlay's directory, the compose file's name.
    pub name: String,
    /// The image every group runs.
    pub image: String,
    /// Where the groups' databases are.
    pub database: Database,
    /// How events travel between groups.
    pub broker: Broker,
    /// The Kubernetes namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The broker's url as the processes see it.
    #[serde(default = "default_nats_url")]
    pub nats_url: String,
    /// The process groups.
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
}

/// A placement file that cannot be deployed: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct DeployError {
    /// The placement file.
    pub file: String,
    /// The key at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl PlacementFile {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`DeployError`] naming the key: unreadable, unknown keys, bad names, a module placed
    /// twice or not at all, replicas SQLite cannot have, several groups without a broker.
    pub fn load(path: &Path) -> Result<Self, DeployError> {
        let file = path.display().to_string();
        let err = |key: &str, message: String| DeployError {
            file: file.clone(),
            key: key.to_owned(),
            message,
        };
        if !path.is_file() {
            return Err(err("(file)", "no such file".into()));
        }
        let placement: Self = Figment::from(Toml::file(path))
            .extract()
            .map_err(|e| err(&e.path.join("."), e.kind.to_string()))?;
        placement
            .check()
            .map_err(|(key, message)| err(&key, message))?;
        Ok(placement)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let label = "1 to 40 of a-z, 0-9 and -, not starting or ending with -";
        if !dns_label(&self.name) {
            return Err(("name".into(), format!("{:?}: {label}", self.name)));
        }
        if !dns_label(&self.namespace) {
            return Err(("namespace".into(), format!("{:?}: {label}", self.namespace)));
        }
        if self.image.trim().is_empty() {
            return Err(("image".into(), "empty".into()));
        }
        if self.groups.is_empty() {
            return Err(("group".into(), "no process groups".into()));
        }
        let known = modules::names();
        let mut placed: BTreeMap<&str, &str> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let at = |k: &str| format!("group[{i}].{k}");
            if !dns_label(&g.name) {
                return Err((at("name"), format!("{:?}: {label}", g.name)));
            }
            if !names.insert(g.name.as_str()) {
                return Err((at("name"), format!("{:?} names two groups", g.name)));
            }
            if g.modules.is_empty() {
                return Err((at("modules"), "hosts no module".into()));
            }
            for m in &g.modules {
                if !known.contains(&m.as_str()) {
                    return Err((
                        at("modules"),
                        format!("unknown module {m:?}; modules: {}", known.join(", ")),
                    ));
                }
                if let Some(other) = placed.insert(m, &g.name) {
                    return Err((
                        at("modules"),
                        format!("{m} is placed in two groups ({other} and {})", g.name),
                    ));
                }
            }
            if !(1..=50).contains(&g.replicas) {
                return Err((at("replicas"), format!("{}: 1 to 50", g.replicas)));
            }
            if self.database == Database::Sqlite && g.replicas > 1 {
                return Err((
                    at("replicas"),
                    "database = \"sqlite\" keeps one file per group: one replica only \
                     (use database = \"postgres\" for replicas)"
                        .into(),
                ));
            }
        }
        let missing: Vec<&str> = known
            .iter()
            .filter(|m| !placed.contains_key(*m))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err((
                "group".into(),
                format!("no group hosts {}", missing.join(", ")),
            ));
        }
        if self.groups.len() > 1 && self.broker == Broker::InProcess {
            return Err((
                "broker".into(),
                "\"in-process\" events do not cross processes: several groups need \
                 broker = \"nats\""
                    .into(),
            ));
        }
        Ok(())
    }

    /// The group hosting `module`.
    fn host_of(&self, module: &str) -> &Group {
        self.groups
            .iter()
            .find(|g| g.modules.iter().any(|m| m == module))
            .unwrap_or(&self.groups[0])
    }

    /// The group serving the shop to the public (the storefront's, which forwards every
    /// API route of a module it does not host).
    fn front(&self) -> &Group {
        self.host_of("storefront")
    }

    /// Groups whose processes call `callee`'s: the module graph's edges (a hosted module
    /// requires one of its modules), every group's token checks against identity, and the
    /// front's forwarded routes.
    #[must_use]
    pub fn callers_of(&self, callee: &Group) -> Vec<&Group> {
        let front = self.front();
        self.groups
            .iter()
            .filter(|caller| caller.name != callee.name)
            .filter(|caller| {
                caller.name == front.name
                    || callee.modules.iter().any(|m| m == "identity")
                    || caller.modules.iter().any(|m| {
                        modules::find(m).is_some_and(|e| {
                            e.spec()
                                .requires
                                .iter()
                                .any(|r| callee.modules.iter().any(|c| c == r))
                        })
                    })
            })
            .collect()
    }

    /// The command `cleave certs init` needs for this placement (the server certificate
    /// names every service), and one `cleave certs issue` per group.
    #[must_use]
    pub fn cert_commands(&self, dir: &str) -> Vec<String> {
        let mut init = format!("cleave certs init --dir {dir}");
        for g in &self.groups {
            let _ = write!(init, " --host {}", g.service());
        }
        init.push_str(" --host localhost --host 127.0.0.1");
        let mut all = vec![init];
        for g in &self.groups {
            all.push(format!(
                "cleave certs issue --dir {dir} --module {}",
                g.modules.join(",")
            ));
        }
        all
    }
}

impl Group {
    /// Its service name (the host other groups reach it at).
    #[must_use]
    pub fn service(&self) -> String {
        format!("{PREFIX}-{}", self.name)
    }

    /// The name of its module certificate's files (`cleave certs issue` writes a+b.pem).
    #[must_use]
    pub fn certificate(&self) -> String {
        self.modules.join("+")
    }

    /// Its PostgreSQL database.
    fn database_name(&self) -> String {
        format!("{PREFIX}_{}", self.name.replace('-', "_"))
    }

    /// Its command line after the binary.
    #[must_use]
    pub fn command(&self) -> Vec<String> {
        vec!["serve".into(), "--modules".into(), self.modules.join(",")]
    }

    /// The files of its TLS directory: (name in the container, file `cleave certs` wrote).
    #[must_use]
    pub fn tls_files(&self) -> Vec<(&'static str, String)> {
        let cert = self.certificate();
        vec![
            ("ca.pem", "ca.pem".into()),
            ("server.pem", "server.pem".into()),
            ("server.key", "server.key".into()),
            ("module.pem", format!("{cert}.pem")),
            ("module.key", format!("{cert}.key")),
        ]
    }

    /// Its environment, but for the database url (compose writes it out, Kubernetes reads
    /// it from the `cleave-database` Secret).
    #[must_use]
    pub fn environment(&self, p: &PlacementFile) -> Vec<(String, String)> {
        let tls = |f: &str| format!("{TLS_DIR}/{f}");
        let mut env = vec![
            ("CLEAVE_SERVER__TLS__CERT_FILE".into(), tls("server.pem")),
            ("CLEAVE_SERVER__TLS__KEY_FILE".into(), tls("server.key")),
            ("CLEAVE_SERVER__TLS__CLIENT_CA_FILE".into(), tls("ca.pem")),
            (
                "CLEAVE_SERVER__TLS__CLIENT_CERT_REQUIRED".into(),
                "false".into(),
            ),
            ("CLEAVE_REMOTE__CA_FILE".into(), tls("ca.pem")),
            ("CLEAVE_REMOTE__CLIENT_CERT_FILE".into(), tls("module.pem")),
            ("CLEAVE_REMOTE__CLIENT_KEY_FILE".into(), tls("module.key")),
            ("CLEAVE_TELEMETRY__SERVICE_NAME".into(), self.service()),
        ];
        match p.broker {
            Broker::Nats => {
                env.push(("CLEAVE_EVENTS__BUS".into(), "nats".into()));
                env.push(("CLEAVE_EVENTS__NATS_URL".into(), p.nats_url.clone()));
            }
            Broker::InProcess => {}
        }
        for m in modules::names() {
            let host = p.host_of(m);
            if host.name != self.name {
                env.push((
                    format!("CLEAVE_MODULES__{}__URL", m.to_uppercase()),
                    format!("https://{}:{PORT}", host.service()),
                ));
            }
        }
        env
    }

    fn labels(&self) -> Value {
        json!({"app.kubernetes.io/name": PREFIX, "app.kubernetes.io/component": self.name})
    }
}

/// A generated file's first lines: where it came from, and not to edit it.
fn header(command: &str, source: &Path) -> String {
    format!(
        "# Generated by `cleave deploy {command} --placement {}`: edit the placement and run it \
         again, not this file.\n",
        source.display()
    )
}

fn yaml(value: &Value) -> String {
    // A serde_json Value always serialises.
    yaml_serde::to_string(value).unwrap_or_default()
}

/// The docker-compose file for `p` (read from `source`).
#[must_use]
pub fn compose(p: &PlacementFile, source: &Path) -> String {
    let mut services = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    let front = p.front().name.clone();
    let db_names: Vec<String> = p.groups.iter().map(Group::database_name).collect();
    for g in &p.groups {
        let mut env: serde_json::Map<String, Value> = g
            .environment(p)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut mounts: Vec<Value> = g
            .tls_files()
            .into_iter()
            .map(|(inside, file)| json!(format!("./certs/{file}:{TLS_DIR}/{inside}:ro")))
            .collect();
        let mut depends = serde_json::Map::new();
        match p.database {
            Database::Postgres => {
                env.insert(
                    "CLEAVE_DATABASE__URL".into(),
                    json!(format!(
                        "postgres://cleave:${{POSTGRES_PASSWORD:-cleave}}@postgres:5432/{}",
                        g.database_name()
                    )),
                );
                depends.insert(
                    "postgres-init".into(),
                    json!({"condition": "service_completed_successfully"}),
                );
            }
            Database::Sqlite => {
                let volume = format!("{}-data", g.service());
                env.insert(
                    "CLEAVE_DATABASE__URL".into(),
                    json!(format!("sqlite://{DATA_DIR}/{}.db?mode=rwc", g.name)),
                );
                mounts.push(json!(format!("{volume}:{DATA_DIR}")));
                volumes.insert(volume, json!({}));
            }
        }
        if p.broker == Broker::Nats {
            depends.insert("nats".into(), json!({"condition": "service_started"}));
        }
        let mut service = json!({
            "image": p.image,
            "command": g.command(),
            "environment": env,
            "volumes": mounts,
            "restart": "unless-stopped",
            "stop_grace_period": format!("{GRACE_SECS}s"),
            "healthcheck": {
                "test": ["CMD", "/app/cleave", "health", "--ready"],
                "interval": "10s",
                "timeout": "5s",
                "retries": 3,
                "start_period": "20s",
            },
            "deploy": {"replicas": g.replicas},
        });
        if !depends.is_empty() {
            service["depends_on"] = Value::Object(depends);
        }
        if g.name == front {
            let ports = if g.replicas > 1 {
                format!(
                    "{PORT}-{}:{PORT}",
                    PORT + u16::try_from(g.replicas - 1).unwrap_or(0)
                )
            } else {
                format!("{PORT}:{PORT}")
            };
            service["ports"] = json!([ports]);
        }
        services.insert(g.service(), service);
    }
    if p.database == Database::Postgres {
        services.insert(
            "postgres".into(),
            json!({
                "image": POSTGRES_IMAGE,
                "environment": {
                    "POSTGRES_USER": "cleave",
                    "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:-cleave}",
                },
                "volumes": ["postgres-data:/var/lib/postgresql/data"],
                "restart": "unless-stopped",
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-U", "cleave"],
                    "interval": "5s",
                    "timeout": "5s",
                    "retries": 10,
                },
            }),
        );
        // One database per group, made once (compose has no other way to run SQL first).
        let script = format!(
            "for db in {}; do psql -h postgres -U cleave -d postgres -tAc \
             \"select 1 from pg_database where datname = '$$db'\" | grep -q 1 \
             || createdb -h postgres -U cleave \"$$db\" || exit 1; done",
            db_names.join(" ")
        );
        services.insert(
            "postgres-init".into(),
            json!({
                "image": POSTGRES_IMAGE,
                "environment": {"PGPASSWORD": "${POSTGRES_PASSWORD:-cleave}"},
                "entrypoint": ["sh", "-c", script],
                "depends_on": {"postgres": {"condition": "service_healthy"}},
            }),
        );
        volumes.insert("postgres-data".into(), json!({}));
    }
    if p.broker == Broker::Nats {
        services.insert(
            "nats".into(),
            json!({
                "image": NATS_IMAGE,
                "command": ["--jetstream", "--store_dir", "/data"],
                "volumes": ["nats-data:/data"],
                "restart": "unless-stopped",
            }),
        );
        volumes.insert("nats-data".into(), json!({}));
    }
    let mut out = header("compose", source);
    out.push_str(&cert_comment(
        p,
        "Certificates first, in ./certs beside this file:",
    ));
    if p.database == Database::Postgres {
        out.push_str(
            "# PostgreSQL's password: POSTGRES_PASSWORD in the environment (default cleave).\n",
        );
    }
    out.push_str("# then: docker compose -f <this file> up\n");
    out.push_str(&yaml(&json!({"services": services, "volumes": volumes})));
    out
}

/// The files of a kustomize tree: (path under the output directory, content).
pub type Files = Vec<(PathBuf, String)>;

/// The kustomize base every placement shares: the namespace and a default-deny ingress
/// policy (each group's own policy then lets in only its callers).
#[must_use]
pub fn k8s_base(p: &PlacementFile, source: &Path) -> Files {
    let head = header("k8s", source);
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": p.namespace, "labels": {"app.kubernetes.io/part-of": PREFIX}},
    });
    let deny = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-ingress"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["namespace.yaml", "default-deny-ingress.yaml"],
    });
    vec![
        (
            PathBuf::from("base/kustomization.yaml"),
            format!("{head}{}", yaml(&kustomization)),
        ),
        (
            PathBuf::from("base/namespace.yaml"),
            format!("{head}{}", yaml(&namespace)),
        ),
        (
            PathBuf::from("base/default-deny-ingress.yaml"),
            format!("{head}{}", yaml(&deny)),
        ),
    ]
}

fn probe(ready: bool, period: u32, failures: u32) -> Value {
    let mut command = vec!["/app/cleave", "health"];
    if ready {
        command.push("--ready");
    }
    json!({
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    })
}

/// Comment lines: `intro`, then the `cleave certs` commands that make the placement's
/// certificates in `./certs`.
fn cert_comment(p: &PlacementFile, intro: &str) -> String {
    let mut out = format!("# {intro}\n");
    for c in p.cert_commands("certs") {
        let _ = writeln!(out, "#   {c}");
    }
    out
}

/// The overlay of placement `p`: per group a Deployment, a Service, a headless Service (DNS
/// discovery of every replica), a PodDisruptionBudget and a NetworkPolicy; Secrets made by
/// kustomize from the certificates (and the database urls).
#[must_use]
pub fn k8s_overlay(p: &PlacementFile, source: &Path) -> Files {
    let head = header("k8s", source);
    let dir = PathBuf::from("overlays").join(&p.name);
    let front = p.front().name.clone();
    let mut files = Vec::new();
    let mut resources = vec![json!("../../base")];
    let mut secrets = Vec::new();
    for g in &p.groups {
        let labels = g.labels();
        let mut env: Vec<Value> = g
            .environment(p)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let mut mounts = vec![json!({"name": "tls", "mountPath": TLS_DIR, "readOnly": true})];
        let mut volumes = vec![json!({
            "name": "tls",
            "secret": {"secretName": format!("{}-tls", g.service()), "defaultMode": 0o440},
        })];
        let mut extra = Vec::new();
        match p.database {
            Database::Postgres => env.push(json!({
                "name": "CLEAVE_DATABASE__URL",
                "valueFrom": {"secretKeyRef": {"name": format!("{PREFIX}-database"), "key": g.name}},
            })),
            Database::Sqlite => {
                let claim = format!("{}-data", g.service());
                env.push(json!({
                    "name": "CLEAVE_DATABASE__URL",
                    "value": format!("sqlite://{DATA_DIR}/{}.db?mode=rwc", g.name),
                }));
                mounts.push(json!({"name": "data", "mountPath": DATA_DIR}));
                volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}}));
                extra.push(json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "labels": labels},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }));
            }
        }
        let strategy = match p.database {
            // One pod holds the SQLite file's volume at a time.
            Database::Sqlite => json!({"type": "Recreate"}),
            Database::Postgres => json!({
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            }),
        };
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": g.service(), "labels": labels},
            "spec": {
                "replicas": g.replicas,
                "selector": {"matchLabels": labels},
                "strategy": strategy,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "terminationGracePeriodSeconds": GRACE_SECS,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": PREFIX,
                            "image": p.image,
                            "args": g.command(),
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "env": env,
                            "volumeMounts": mounts,
                            "startupProbe": probe(false, 2, 30),
                            "livenessProbe": probe(false, 10, 3),
                            "readinessProbe": probe(true, 5, 2),
                            "resources": {
                                "requests": {"cpu": g.cpu, "memory": g.memory},
                                "limits": {"memory": g.memory},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                        "volumes": volumes,
                    },
                },
            },
        });
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": g.service(), "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        });
        let headless = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": format!("{}-pods", g.service()), "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        });
        let budget = json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": g.service(), "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        });
        let port = json!([{"protocol": "TCP", "port": PORT}]);
        let mut from: Vec<Value> = Vec::new();
        let callers: Vec<&str> = p.callers_of(g).iter().map(|c| c.name.as_str()).collect();
        if !callers.is_empty() {
            from.push(json!({"podSelector": {"matchExpressions": [{
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": callers,
            }]}}));
        }
        // Prometheus scrapes /metrics from the monitoring namespace.
        from.push(json!({"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring",
        }}}));
        let ingress = if g.name == front {
            // The shop's front door: anyone.
            json!([{"ports": port}])
        } else {
            json!([{"from": from, "ports": port}])
        };
        let policy = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": g.service(), "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        });
        let mut docs = vec![deployment, service, headless, budget, policy];
        docs.extend(extra);
        let body: Vec<String> = docs.iter().map(yaml).collect();
        let file = format!("{}.yaml", g.service());
        files.push((dir.join(&file), format!("{head}{}", body.join("---\n"))));
        resources.push(json!(file));
        secrets.push(json!({
            "name": format!("{}-tls", g.service()),
            "files": g
                .tls_files()
                .into_iter()
                .map(|(inside, file)| format!("{inside}=certs/{file}"))
                .collect::<Vec<_>>(),
        }));
    }
    if p.database == Database::Postgres {
        secrets.push(json!({"name": format!("{PREFIX}-database"), "envs": ["database.env"]}));
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": p.namespace,
        "resources": resources,
        "secretGenerator": secrets,
    });
    let mut head_k = head.clone();
    head_k.push_str(&cert_comment(
        p,
        "Before `kubectl apply -k`: the certificates in ./certs beside this file,",
    ));
    if p.database == Database::Postgres {
        head_k.push_str(
            "# and ./database.env with one PostgreSQL url per group (GROUP=postgres://...):\n",
        );
        for g in &p.groups {
            let _ = writeln!(
                head_k,
                "#   {}=postgres://cleave:PASSWORD@HOST:5432/{}",
                g.name,
                g.database_name()
            );
        }
    }
    files.push((
        dir.join("kustomization.yaml"),
        format!("{head_k}{}", yaml(&kustomization)),
    ));
    files
}

/// Every file `cleave deploy k8s` writes for `p`: the base and its overlay.
#[must_use]
pub fn k8s(p: &PlacementFile, source: &Path) -> Files {
    let mut files = k8s_base(p, source);
    files.extend(k8s_overlay(p, source));
    files
}
