# Everyday recipes. `just --list` shows them.

# Run the whole shop on http://127.0.0.1:8080 (every module, SQLite under ./data).
run:
    cargo run --release

# The test suite with what it needs (SQLite; set CLEAVE_TEST_DATABASE_URL to run it on PostgreSQL too).
test:
    bash scripts/test.sh

# What CI runs: services checked, fmt, clippy, tests on SQLite and PostgreSQL.
ci:
    bash .ci/run

# Format and lint.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Benchmarks: module-call costs (criterion) and HTTP throughput against baselines (wrk).
bench:
    cargo bench --locked --bench module_calls
    scripts/bench-http.sh
    scripts/bench-login-memory.sh
    scripts/bench-shed.sh

# Split cost: Boutique's task mix against one process and one process per module.
bench-mix:
    scripts/bench-mix.sh

# Apply migrations to the configured database.
migrate:
    cargo run --release -- migrate

# Split demo, terminal 1: the catalog alone on :8081, with its own database.
split-catalog:
    CLEAVE_DATABASE__DATA_DIR=data/catalog cargo run --release -- serve --modules catalog --listen 127.0.0.1:8081

# Split demo, terminal 2: everything else on :8080, calling the catalog on :8081.
split-rest:
    CLEAVE_MODULES__CATALOG__URL=http://127.0.0.1:8081 cargo run --release -- serve --modules currency,cart,recommendation

# Build the container image from the Dockerfile (needs a Docker engine; see image-local).
image:
    docker build -t cleave:dev .

# Regenerate the committed deployment files from the placements (deploy/placement.toml,
# deploy/placements/*.toml): the compose files and the Kubernetes overlays.
deploy-files:
    cargo build --release --locked --bin cleave
    for f in deploy/placement.toml deploy/placements/*.toml; do \
        name=$(grep -m1 '^name' "$f" | cut -d'"' -f2); \
        target/release/cleave deploy compose --placement "$f" > "deploy/compose/$name.yaml"; \
        target/release/cleave deploy k8s --placement "$f" --out deploy/k8s > /dev/null; \
    done

# Lint the deployment files (hadolint, docker-compose, kustomize + kubernetes-validate,
# check-jsonschema), as CI does.
check-deploy:
    bash scripts/check-deploy.sh

# Assemble the runtime image with buildah from the dist binary (fat LTO, as the Dockerfile
# builds it); prints its size.
image-local:
    cargo build --profile dist --locked --bin cleave
    bash scripts/image.sh target/dist/cleave
