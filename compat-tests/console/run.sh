#!/usr/bin/env bash
# The web console in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
# Selenium loads every page, creates a topic, produces a record, browses it back, and watches a
# consumer group's lag fall to 0 once a confluent-kafka consumer commits; read-only mode hides the
# actions; with an authorizer it asks for a login and shows each user what its ACLs allow.
# Screenshots land in compat-tests/console/out/ (gitignored). About 15 s.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init console

command -v chromium >/dev/null || die "chromium not installed (scripts/install-deps.sh)"
command -v chromedriver >/dev/null || die "chromedriver not installed (scripts/install-deps.sh)"
[ -x "$VENV_PY" ] || die "missing $VENV_PY (scripts/install-deps.sh)"
"$VENV_PY" -c 'import selenium, confluent_kafka' 2>/dev/null || die "selenium or confluent-kafka missing in the venv (scripts/install-deps.sh)"

# run_browser MODE: the Selenium script against the running broker; its PASS/FAIL lines are counted.
run_browser() {
  local out rc=0 line
  out="$("$VENV_PY" "$HERE/console_test.py" "$1" 2>"$WORK/browser-$1.stderr")" || rc=$?
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) pass "${line#PASS }" ;;
      "FAIL "*) fail "${line#FAIL }" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <<<"$out"
  if [ "$rc" -ne 0 ]; then
    fail "browser script ($1) exits 0" "rc=$rc"
    tail -n 30 "$WORK/browser-$1.stderr" | sed 's/^/    /'
  fi
}

# The embedded script must parse (a syntax error would only show as an empty page).
if command -v node >/dev/null; then
  check "console.js parses (node --check)" node --check "$REPO_ROOT/src/http/assets/console.js"
fi

HTTP_PORT="$(free_port)"
FJORD_HTTP_LISTENER="127.0.0.1:$HTTP_PORT" fjord_start "$WORK/data" --override group.initial.rebalance.delay.ms=0 \
  || { fail "broker starts"; suite_finish; exit 1; }
export CONSOLE_URL="http://127.0.0.1:$HTTP_PORT/" FJORD_BOOTSTRAP WORK
run_browser write
fjord_stop || fail "broker exits cleanly on SIGTERM"

HTTP_PORT="$(free_port)"
FJORD_HTTP_LISTENER="127.0.0.1:$HTTP_PORT" fjord_start "$WORK/data" --override fjord.http.console.readonly=true \
  || { fail "read-only broker starts"; suite_finish; exit 1; }
export CONSOLE_URL="http://127.0.0.1:$HTTP_PORT/"
run_browser readonly
fjord_stop || fail "read-only broker exits cleanly on SIGTERM"

# With an authorizer: PLAIN users on a SASL listener log in to the console.
HTTP_PORT="$(free_port)"
SASL_PORT="$(free_port)"
FJORD_HTTP_LISTENER="127.0.0.1:$HTTP_PORT" fjord_start "$WORK/data" \
  --override "listeners=PLAINTEXT://127.0.0.1:$FJORD_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT" \
  --override listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT \
  --override sasl.enabled.mechanisms=PLAIN \
  --override 'listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret";' \
  --override authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
  --override super.users=User:admin \
  || { fail "broker with an authorizer starts"; suite_finish; exit 1; }
export CONSOLE_URL="http://127.0.0.1:$HTTP_PORT/"
run_browser login
suite_finish
