#!/usr/bin/env bash
# Idempotent: installs (Debian) only what building the rdkafka crate's bundled librdkafka needs and
# is missing: a C toolchain and make (librdkafka's ./configure + make), perl, pkg-config and the zlib
# headers (libz feature), python3 (lib.sh's free_port). Uses sudo only when not root.
set -euo pipefail

log() { printf '[rdkafka-deps] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else log "not root and no sudo: apt steps may fail"; fi
fi

PKGS=(gcc g++ make perl pkg-config zlib1g-dev python3 ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { log "apt-get not found; please install: ${missing[*]}"; exit 1; }
  log "apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  log "apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "build dependencies present"
fi

command -v cargo >/dev/null 2>&1 || { log "cargo not found (Rust toolchain required)"; exit 1; }
