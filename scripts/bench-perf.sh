#!/usr/bin/env bash
# Sourced by the bench scripts: builds the release broker and librdkafka's load generator
# (examples/rdkafka_performance.c from the librdkafka source in the rdkafka-sys crate, the
# program Apache Kafka's baseline was measured with). Sets FJORD_BIN and PERF.
#   . scripts/bench-perf.sh; bench_build "$WORK"
bench_build() {
  local work="$1" out
  cargo build --release >&2
  FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
  PERF="$work/rdkafka_performance"
  if [ ! -x "$PERF" ]; then
    printf '[bench] %s\n' "building rdkafka_performance from the librdkafka source in rdkafka-sys" >&2
    compat-tests/rdkafka/deps.sh >&2
    cargo build --release -j 2 --manifest-path compat-tests/rdkafka/Cargo.toml \
      --target-dir compat-tests/rdkafka/target >&2
    out=$(dirname "$(find compat-tests/rdkafka/target/release/build -name librdkafka.a -path '*rdkafka-sys*' | head -1)")
    out=$(dirname "$out")   # .../out (holds config.h, src/, examples/)
    gcc -O2 -o "$PERF" "$out/examples/rdkafka_performance.c" -I"$out/src" "$out/src/librdkafka.a" \
      -lz -lpthread -lm -ldl -lrt
  fi
  export FJORD_BIN PERF
}
