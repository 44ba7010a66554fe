# One image for every placement: the same binary serves all modules or any subset, chosen by
# configuration at run time (CLEAVE_SERVER__MODULES=catalog, CLEAVE_MODULES__CATALOG__URL=...).
#
#   docker build -t cleave .
#   docker run -p 8080:8080 cleave                                      # the whole shop
#   docker run -e CLEAVE_SERVER__MODULES=catalog cleave                 # catalog only
#
# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY modules/ modules/
COPY migrations/ migrations/
COPY src/ src/
COPY benches/ benches/
# Cache mounts keep the registry and target dir between builds, so an edit rebuilds only
# what changed. The SQLite directory is made here: the runtime image has no shell.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cleave \
 && cp target/release/cleave /cleave \
 && mkdir -p /data

# ---- run --------------------------------------------------------------------------------
# distroless cc: glibc and libgcc, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /cleave /app/cleave
COPY --from=build --chown=65532:65532 /data /var/lib/cleave
COPY config/ /app/config/
ENV CLEAVE_ENV=production \
    CLEAVE_CONFIG_DIR=/app/config \
    CLEAVE_DATABASE__DATA_DIR=/var/lib/cleave
# The SQLite default lives here; mount a volume (or set CLEAVE_DATABASE__URL to PostgreSQL).
VOLUME ["/var/lib/cleave"]
USER nonroot:nonroot
EXPOSE 8080
# Liveness: GET /health/live; readiness: GET /health/ready (database and remote modules).
# SIGTERM drains in-flight requests for server.shutdown_timeout_secs, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/cleave"]
CMD ["serve"]
