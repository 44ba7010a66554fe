//! `cleave edge nginx | haproxy`: the configuration of an edge proxy in front of a split
//! deployment, generated from the placement this configuration describes (every module's
//! `modules.<m>.url` or `urls`): each module's public API (`/api/<m>/`) goes to the
//! processes hosting it, everything else (the shop's pages, the API documents) to the
//! storefront's; the internal routes (`/metrics`, `/_cleave/`, `/health/`) are not served at
//! the edge. Upstreams keep connections alive and leave out failing processes: haproxy asks
//! each `/health/ready` (so a draining process is taken out before it stops); nginx, which
//! has no active checks outside its commercial edition, marks a server failed after errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::Settings;
use crate::modules;

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proxy {
    /// nginx (open-source): passive health checks.
    Nginx,
    /// haproxy: active health checks on /health/ready.
    Haproxy,
}

/// Routes no edge serves: they are for operators and orchestrators, inside.
pub const INTERNAL_PREFIXES: [&str; 3] = ["/metrics", "/_cleave/", "/health/"];

/// What the edge answers on an internal route: the problem every Cleave process answers on a
/// path nobody serves (404 `cleave.route_not_found`), its request id `request_id` (the
/// proxy's own variable).
fn not_found(request_id: &str) -> String {
    let failure =
        cleave_kernel::error::Failure::from(cleave_kernel::error::KernelError::RouteNotFound);
    let mut problem = failure.problem().clone();
    problem.request_id = Some("REQUEST-ID".into());
    serde_json::to_string(&problem)
        .unwrap_or_default()
        .replace("REQUEST-ID", request_id)
}

/// The processes serving some modules: where they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Upstream {
    /// Its name in the configuration (the modules it serves, joined).
    name: String,
    /// `https` or `http`.
    scheme: String,
    /// host:port of each process.
    servers: Vec<String>,
    /// The host name the certificates are checked against (https): the first process's
    /// (nginx checks one name per upstream; haproxy checks each server's own).
    tls_name: String,
}

/// The host of `server` (`host:port`).
fn host_of(server: &str) -> &str {
    server.rsplit_once(':').map_or(server, |(host, _)| host)
}

/// Where each module's public routes go.
struct Routes {
    upstreams: Vec<Upstream>,
    /// (path prefix, upstream name), longest prefixes first; the storefront's is `/`.
    routes: Vec<(String, String)>,
    /// The CA the processes' certificates come from (`remote.ca_file`).
    ca_file: Option<String>,
    /// The largest request body the processes take (`server.max_body_bytes`).
    max_body: usize,
}

/// The edge's routes for `settings`.
///
/// # Errors
/// When a module has no url: the edge hosts nothing, so every module must be placed
/// somewhere it can reach.
fn routes(settings: &Settings) -> Result<Routes, String> {
    let missing: Vec<&str> = modules::names()
        .into_iter()
        .filter(|m| !settings.targets.contains_key(*m))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the edge hosts no module: give every module its url (modules.<m>.url or urls); \
             missing: {}",
            missing.join(", ")
        ));
    }
    // Modules at the same processes share an upstream.
    let mut by_servers: BTreeMap<(String, Vec<String>), Vec<&str>> = BTreeMap::new();
    for m in modules::names() {
        let target = &settings.targets[m];
        let servers = target
            .urls
            .iter()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or(80)
                )
            })
            .collect();
        by_servers
            .entry((target.url.scheme().to_owned(), servers))
            .or_default()
            .push(m);
    }
    let mut upstreams = Vec::new();
    let mut upstream_of: BTreeMap<&str, String> = BTreeMap::new();
    for ((scheme, servers), mods) in by_servers {
        let name = mods.join("_");
        for m in &mods {
            upstream_of.insert(m, name.clone());
        }
        let tls_name = settings.targets[mods[0]]
            .url
            .host_str()
            .unwrap_or_default()
            .to_owned();
        upstreams.push(Upstream {
            name,
            scheme,
            servers,
            tls_name,
        });
    }
    let mut routes: Vec<(String, String)> = modules::names()
        .into_iter()
        .filter(|m| *m != storefront::MODULE)
        .map(|m| (format!("/api/{m}/"), upstream_of[m].clone()))
        .collect();
    routes.push(("/".into(), upstream_of[storefront::MODULE].clone()));
    Ok(Routes {
        upstreams,
        routes,
        ca_file: settings
            .app
            .remote
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        max_body: settings.app.server.max_body_bytes,
    })
}

/// What an operator should know about the configuration for `settings`: https upstreams
/// addressed by IP, whose certificates nginx and haproxy cannot check (they match DNS names
/// only).
#[must_use]
pub fn warnings(settings: &Settings) -> Vec<String> {
    settings
        .targets
        .iter()
        .flat_map(|(m, t)| t.urls.iter().map(move |u| (m, u)))
        .filter(|(_, u)| {
            u.scheme() == "https"
                && matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        })
        .map(|(m, u)| {
            format!(
                "modules.{m}: {u} is addressed by IP; nginx and haproxy check certificates \
                 against host names only, so address it by a name its certificate carries"
            )
        })
        .collect()
}

/// The configuration of `proxy` listening on `listen`, for the placement of `settings`.
///
/// # Errors
/// As [`routes`].
pub fn config(settings: &Settings, proxy: Proxy, listen: SocketAddr) -> Result<String, String> {
    let r = routes(settings)?;
    Ok(match proxy {
        Proxy::Nginx => nginx(&r, listen),
        Proxy::Haproxy => haproxy(&r, listen),
    })
}

fn nginx(r: &Routes, listen: SocketAddr) -> String {
    let mut out = String::from(
        "# Generated by `cleave edge nginx` from this deployment's module urls.\n\
         # Run: nginx -c <this file>   (or include its http block in your own)\n\
         worker_processes auto;\n\
         events { worker_connections 1024; }\n\
         http {\n\
         \x20   access_log off;\n\
         \x20   # Idle connections to the processes kept for reuse (HTTP/1.1, no Connection: close).\n",
    );
    for u in &r.upstreams {
        let _ = writeln!(out, "    upstream {} {{", u.name);
        for s in &u.servers {
            // Passive checks: a server failing 3 times in 10 s is left out for 10 s.
            let _ = writeln!(out, "        server {s} max_fails=3 fail_timeout=10s;");
        }
        out.push_str("        keepalive 32;\n    }\n");
    }
    let _ = writeln!(out, "    server {{\n        listen {listen};");
    out.push_str(
        "        proxy_http_version 1.1;\n\
         \x20       proxy_set_header Connection \"\";\n\
         \x20       proxy_set_header Host $http_host;\n\
         \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20       proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20       # Another process when one cannot be reached (nginx never repeats a POST\n\
         \x20       # that was sent).\n\
         \x20       proxy_next_upstream error timeout http_502 http_503;\n",
    );
    let _ = writeln!(out, "        client_max_body_size {};", r.max_body);
    let problem = not_found("$request_id");
    for prefix in INTERNAL_PREFIXES {
        let _ = writeln!(
            out,
            "        location {prefix} {{ default_type application/problem+json; return 404 '{problem}'; }}"
        );
    }
    for (prefix, name) in &r.routes {
        let u = r
            .upstreams
            .iter()
            .find(|u| &u.name == name)
            .expect("every route has its upstream");
        let _ = writeln!(out, "        location {prefix} {{");
        let _ = writeln!(out, "            proxy_pass {}://{};", u.scheme, u.name);
        if u.scheme == "https" {
            let _ = writeln!(out, "            proxy_ssl_server_name on;");
            let _ = writeln!(out, "            proxy_ssl_name {};", u.tls_name);
            if let Some(ca) = &r.ca_file {
                let _ = writeln!(out, "            proxy_ssl_trusted_certificate {ca};");
                out.push_str("            proxy_ssl_verify on;\n");
            }
            out.push_str("            proxy_ssl_session_reuse on;\n");
        }
        out.push_str("        }\n");
    }
    out.push_str("    }\n}\n");
    out
}

fn haproxy(r: &Routes, listen: SocketAddr) -> String {
    let mut out = String::from(
        "# Generated by `cleave edge haproxy` from this deployment's module urls.\n\
         # Run: haproxy -f <this file>\n\
         global\n\
         \x20   log stderr format raw local0 notice\n\
         defaults\n\
         \x20   mode http\n\
         \x20   log global\n\
         \x20   option httplog\n\
         \x20   option forwardfor\n\
         \x20   # Idle connections to the processes reused across requests.\n\
         \x20   option http-keep-alive\n\
         \x20   http-reuse safe\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 35s\n\
         \x20   # Another process when one cannot be reached.\n\
         \x20   retries 2\n\
         \x20   option redispatch\n\
         \x20   retry-on conn-failure empty-response response-timeout 503\n",
    );
    let _ = writeln!(out, "frontend edge\n    bind {listen}");
    let problem = not_found("%[uuid()]");
    for (i, prefix) in INTERNAL_PREFIXES.iter().enumerate() {
        let _ = writeln!(out, "    acl internal_{i} path_beg {prefix}");
        let _ = writeln!(
            out,
            "    http-request return status 404 content-type application/problem+json lf-string '{problem}' if internal_{i}"
        );
    }
    for (prefix, name) in &r.routes {
        if prefix == "/" {
            let _ = writeln!(out, "    default_backend {name}");
        } else {
            let _ = writeln!(out, "    use_backend {name} if {{ path_beg {prefix} }}");
        }
    }
    for u in &r.upstreams {
        let _ = writeln!(out, "backend {}", u.name);
        // A process answering 503 (not ready, draining) is taken out after 2 checks.
        out.push_str(
            "    option httpchk GET /health/ready\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 2s fall 2 rise 2 init-addr libc,none\n",
        );
        for (i, s) in u.servers.iter().enumerate() {
            let _ = write!(out, "    server {}{i} {s} check", u.name);
            if u.scheme == "https" {
                match &r.ca_file {
                    Some(ca) => {
                        let _ = write!(out, " ssl verify required ca-file {ca}");
                    }
                    None => out.push_str(" ssl verify required ca-file @system-ca"),
                }
                let host = host_of(s);
                let _ = write!(out, " sni str({host}) check-sni {host}");
            }
            out.push('\n');
        }
    }
    out
}
