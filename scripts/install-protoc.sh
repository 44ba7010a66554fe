#!/usr/bin/env bash
# protoc with its well-known types (google/protobuf/descriptor.proto, struct.proto, ...):
# etcd-client's build compiles etcd's protocol, which imports them. Debian ships the compiler
# in protobuf-compiler and the well-known types in libprotobuf-dev (only a recommendation of
# the compiler, so a --no-install-recommends install lacks them and the build fails with
# "google/protobuf/descriptor.proto: File not found"). Installs both when either is missing,
# then proves it by compiling a file that imports one; fails loudly otherwise.
set -euo pipefail
include=/usr/include/google/protobuf/descriptor.proto
if ! command -v protoc >/dev/null || [ ! -f "$include" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev >/dev/null
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\nmessage Probe { google.protobuf.FieldDescriptorProto f = 1; }\n' >"$probe/probe.proto"
if ! protoc --proto_path="$probe" --descriptor_set_out=/dev/null "$probe/probe.proto"; then
  echo "install-protoc: protoc cannot find its well-known types ($include)" >&2
  exit 1
fi
protoc --version
