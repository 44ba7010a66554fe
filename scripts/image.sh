#!/usr/bin/env bash
# Assembles the runtime image with buildah from a locally built binary, without a Docker
# engine or a registry: an image from scratch holding what the Dockerfile's distroless stage
# holds (the binary, the C libraries it links, CA roots, a passwd line for uid 65532, the
# config directory, the data volume) with the same user, environment, entrypoint and
# healthcheck. Checks the assembled root by running `cleave --version` and `cleave deploy
# --help` in it (chroot), then prints the image's size.
#
#   scripts/image.sh [BIN]      BIN: default target/release/cleave; IMAGE (default
#                               localhost/cleave:dev) names the result
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cleave}
IMAGE=${IMAGE:-localhost/cleave:dev}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 1; }
bash scripts/install-debian.sh "buildah" buildah
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
# HEALTHCHECK exists only in the docker image format (OCI has none).
export BUILDAH_FORMAT=docker

stage=$(mktemp -d)
ctr=""
cleanup() {
  [ -n "$ctr" ] && { buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; }
  rm -rf "$stage"
}
trap cleanup EXIT

# The root file system: the binary and every library the dynamic linker loads for it.
mkdir -p "$stage/app" "$stage/etc/ssl/certs" "$stage/var/lib/cleave" "$stage/tmp"
install -m 0755 "$BIN" "$stage/app/cleave"
cp -r config "$stage/app/config"
for lib in $(ldd "$BIN" | awk '/=> \// { print $3 } /^\s*\/lib/ { print $1 }'); do
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/etc/group"
chmod 1777 "$stage/tmp"

# Runs in the assembled root: every library is there and the binary starts.
version=$(chroot "$stage" /app/cleave --version)
chroot "$stage" /app/cleave deploy --help >/dev/null
chown -R 65532:65532 "$stage/var/lib/cleave"

ctr=$(buildah from scratch)
mnt=$(buildah mount "$ctr")
cp -a "$stage/." "$mnt/"
buildah umount "$ctr" >/dev/null
buildah config \
  --workingdir /app \
  --env CLEAVE_ENV=production \
  --env CLEAVE_CONFIG_DIR=/app/config \
  --env CLEAVE_DATABASE__DATA_DIR=/var/lib/cleave \
  --volume /var/lib/cleave \
  --user 65532:65532 \
  --port 8080 \
  --stop-signal SIGTERM \
  --healthcheck 'CMD /app/cleave health' \
  --healthcheck-interval 10s --healthcheck-timeout 5s \
  --healthcheck-start-period 20s --healthcheck-retries 3 \
  --entrypoint '["/app/cleave"]' \
  --cmd serve \
  --label "org.opencontainers.image.version=$version" \
  "$ctr"
buildah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
size=$(buildah images --format '{{.Size}}' "$IMAGE" | sed -n 1p)
binary=$(du -h "$BIN" | cut -f1)
echo "image $IMAGE: $size (the binary alone: $binary; $version)"
