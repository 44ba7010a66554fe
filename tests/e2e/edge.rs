//! The edge: `cleave edge nginx|haproxy` in front of the shop split in two processes, run
//! with Debian's nginx and haproxy (scripts/test.sh installs them): through each, the shop's
//! checkout works, a module's API reaches the process hosting it, and the internal routes
//! are not served.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::Method;

use crate::helpers::{call_as, free_port, free_ports, get, guest, sqlite_in};
use crate::process::Cleave;
use crate::storefront::{CHECKOUT_FORM, Shopper};

/// The front's modules (with every module-only call among them, so that both processes can
/// speak plain HTTP); the others (catalog, currency, recommendation, ads) run in a second.
const FRONT: [&str; 7] = [
    "identity",
    "storefront",
    "cart",
    "checkout",
    "payment",
    "shipping",
    "email",
];

/// A proxy process, stopped (SIGTERM, then reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Starts `program args`, returning once it wrote a line containing `ready` on stderr.
fn start(program: &str, args: &[&str], ready: &str) -> Running {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is not installed (scripts/test.sh installs it): {e}")
        });
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(ready) => break,
            Some(Ok(line)) => said.push(line),
            _ => panic!("{program} exited before it was ready: {said:?}"),
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Running(child)
}

/// `cleave edge PROXY --listen ADDR` with `env`: the configuration it prints.
fn edge_config(proxy: &str, listen: &str, env: &[(String, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.args(["edge", proxy, "--listen", listen]);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLEAVE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("run cleave edge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn the_shop_works_through_nginx_and_haproxy_configured_by_cleave_edge() {
    let dir = tempfile::tempdir().expect("dir");
    let ports = free_ports(2);
    let (front_port, rest_port) = (ports[0], ports[1]);
    let url_of = |m: &str| {
        let port = if FRONT.contains(&m) {
            front_port
        } else {
            rest_port
        };
        format!("http://127.0.0.1:{port}")
    };
    let urls: Vec<(String, String)> = cleave::modules::names()
        .into_iter()
        .map(|m| {
            (
                format!("CLEAVE_MODULES__{}__URL", m.to_uppercase()),
                url_of(m),
            )
        })
        .collect();
    let process = |port: u16, hosted: Vec<&str>, db: &str| {
        let mut env: Vec<(&str, String)> = vec![
            ("CLEAVE_SERVER__LISTEN", format!("127.0.0.1:{port}")),
            ("CLEAVE_DATABASE__URL", sqlite_in(dir.path(), db)),
        ];
        for (key, url) in &urls {
            let module = key
                .trim_start_matches("CLEAVE_MODULES__")
                .trim_end_matches("__URL")
                .to_lowercase();
            if !hosted.contains(&module.as_str()) {
                env.push((key.as_str(), url.clone()));
            }
        }
        Cleave::serve(&["--modules", &hosted.join(",")], &env)
    };
    let rest: Vec<&str> = cleave::modules::names()
        .into_iter()
        .filter(|m| !FRONT.contains(m))
        .collect();
    let _front = process(front_port, FRONT.to_vec(), "front.db");
    let _rest = process(rest_port, rest, "rest.db");

    for proxy in ["nginx", "haproxy"] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let config = edge_config(proxy, &listen, &urls);
        let file = dir.path().join(format!("{proxy}.conf"));
        std::fs::write(&file, &config).expect("write");
        let file = file.display().to_string();
        let prefix = dir.path().display().to_string();
        let _edge = match proxy {
            "nginx" => start(
                "nginx",
                &[
                    "-p",
                    &prefix,
                    "-c",
                    &file,
                    "-g",
                    &format!("daemon off; pid {prefix}/nginx.pid; error_log stderr notice;"),
                ],
                "start worker process",
            ),
            _ => start("haproxy", &["-W", "-db", "-f", &file], "Loading success"),
        };
        let edge = format!("http://{listen}");

        // A module's API in the second process, and one in the front.
        let products = get(&edge, "/api/catalog/v1/products").await;
        assert_eq!(products.status, 200, "{proxy}: {products:?}");
        let (user, token) = guest(&edge).await;
        let cart = call_as(
            &edge,
            Method::GET,
            &format!("/api/cart/v1/carts/{user}"),
            None,
            Some(&token),
        )
        .await;
        assert_eq!(cart.status, 200, "{proxy}: {cart:?}");
        // Not for the public.
        for internal in ["/metrics", "/_cleave/", "/health/ready"] {
            let answer = get(&edge, internal).await;
            assert_eq!(answer.status, 404, "{proxy}: {internal}: {answer:?}");
        }
        // The shop: browse, add to the cart, check out.
        let mut shopper = Shopper::at(edge.clone());
        assert_eq!(shopper.get("/").await.status, 200, "{proxy}");
        let added = shopper
            .post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "1")])
            .await;
        assert!(added.status.is_redirection(), "{proxy}: {}", added.status);
        let done = shopper.post("/cart/checkout", &CHECKOUT_FORM).await;
        assert_eq!(done.status, 200, "{proxy}");
        assert!(
            done.body.contains("Your order is complete!"),
            "{proxy}: {}",
            done.body
        );
    }
}
