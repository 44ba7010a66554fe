//! Records the git revision the binary is built from (`cleave --version`), or `unknown`
//! where there is no git checkout and no GIT_REVISION (a source archive); compiles Online
//! Boutique's gRPC contract (`src/grpc/demo.proto`).

use std::path::Path;
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // A container build has no .git: its Dockerfile passes the revision in.
    println!("cargo:rerun-if-env-changed=GIT_REVISION");
    let given = || {
        std::env::var("GIT_REVISION")
            .ok()
            .filter(|r| !r.is_empty() && r != "unknown")
    };
    let revision = git(&["rev-parse", "--short=12", "HEAD"])
        .or_else(given)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILT_FROM_GIT_REVISION={revision}");
    // Rebuilt when HEAD moves (a commit, a checkout).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = Path::new(&dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(head).display());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");

    // Online Boutique's gRPC contract (src/grpc.rs), with its descriptors for reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("hipstershop_descriptor.bin"))
        .compile_protos(&["src/grpc/demo.proto"], &["src/grpc"])
        .expect("compile src/grpc/demo.proto (protoc: scripts/install-protoc.sh)");
}
