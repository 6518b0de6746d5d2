#!/usr/bin/env bash
# Idempotent installer for everything the compat tests need on a fresh Debian machine:
#   - kcat (Debian's package, librdkafka 2.0.x) for compat-tests/kcat (and cluster-clients)
#   - a Python venv at compat-tests/.venv with compat-tests/python/requirements.txt
#     (confluent-kafka, kafka-python, pytest) for compat-tests/python, crash, cluster, cluster-clients
#   - node + npm (Debian's nodejs/npm, only when node is missing) and compat-tests/kafkajs/node_modules
#     from compat-tests/kafkajs/package.json (pinned kafkajs, no lock file) for compat-tests/kafkajs
#     and compat-tests/cluster-clients (its group.js requires kafkajs from there)
#   - the openssl CLI, which compat-tests/tls uses to make its CA and certificates at run time
#   - libssl-dev, for the librdkafka test runner built with SSL and SASL SCRAM (compat-tests/librdkafka)
#   - Chromium and chromedriver (Debian's chromium, chromium-driver) and Selenium in the venv
#     (compat-tests/console/requirements.txt) for compat-tests/console, the web console's browser test
#   - Debian's Go and sarama sources (golang-go, golang-github-shopify-sarama-dev) for compat-tests/sarama
#   - shellcheck (optional lint, best effort)
# Each step checks first and skips when already satisfied. Uses sudo only when not root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/compat-tests/.venv"
REQ="$ROOT/compat-tests/python/requirements.txt"

log() { printf '[install-deps] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else log "not root and no sudo: apt steps may fail"; fi
fi

APT_UPDATED=0
apt_install() {
  # apt_install PKG... : installs only the packages that are missing.
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not found; please install: ${missing[*]}"; return 1
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. kcat
if command -v kcat >/dev/null 2>&1; then
  log "kcat present: $(kcat -V 2>&1 | head -1)"
else
  apt_install kcat
fi

# 1b. openssl CLI: compat-tests/tls makes its test certificates with it (no key is committed).
command -v openssl >/dev/null 2>&1 || apt_install openssl
# 1b'. OpenSSL's headers: scripts/build-librdkafka-tests.sh builds librdkafka with SSL and SCRAM
# (compat-tests/librdkafka --sasl-ssl, compat-tests/librdkafka-sec); that script installs the rest
# of its build packages itself.
apt_install libssl-dev

# 1c. Chromium and its WebDriver for compat-tests/console (headless; Selenium drives them).
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  log "chromium present: $(chromium --version 2>/dev/null | head -1)"
else
  apt_install chromium chromium-driver
fi

# 1d. Go and sarama 1.22 (Debian's sources, built in GOPATH mode) for compat-tests/sarama.
apt_install golang-go golang-github-shopify-sarama-dev

# 2. shellcheck: lint only, not required by any suite.
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck || log "shellcheck unavailable (lint skipped)"

# 3. Python venv with the client libraries.
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  apt_install python3
  PY=python3
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  log "creating venv $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

# Reinstall only when requirements.txt changed since the last successful install.
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && "$VENV/bin/python" -c 'import confluent_kafka, kafka, pytest' >/dev/null 2>&1; then
  log "python requirements present"
else
  log "pip install -r $REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
  echo "$WANT" > "$STAMP"
fi
# 3b. Selenium for compat-tests/console, in the same venv.
CREQ="$ROOT/compat-tests/console/requirements.txt"
CSTAMP="$VENV/.console-requirements.sha256"
CWANT="$(sha256sum "$CREQ" | cut -d' ' -f1)"
if [ -f "$CSTAMP" ] && [ "$(cat "$CSTAMP")" = "$CWANT" ] && "$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1; then
  log "selenium present"
else
  log "pip install -r $CREQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$CREQ"
  echo "$CWANT" > "$CSTAMP"
fi
# 4. Node and kafkajs for compat-tests/kafkajs (node_modules/ is gitignored; no package-lock.json is kept).
KJS="$ROOT/compat-tests/kafkajs"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
KJS_WANT="$(node -p 'require(process.argv[1]).dependencies.kafkajs' "$KJS/package.json")"
KJS_HAVE="$(node -p 'try { require(process.argv[1]).version } catch (e) { "" }' "$KJS/node_modules/kafkajs/package.json" 2>/dev/null || true)"
if [ "$KJS_HAVE" = "$KJS_WANT" ]; then
  log "kafkajs $KJS_HAVE present (node $(node --version))"
else
  log "npm install kafkajs@$KJS_WANT into $KJS/node_modules"
  (cd "$KJS" && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
fi

"$VENV/bin/python" -c 'import confluent_kafka, kafka; print("[install-deps] confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)' >&2
log "done"
