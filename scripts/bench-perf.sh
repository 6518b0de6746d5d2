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

# bench_build_tls WORK: also PERF_TLS, the same load generator linked against a librdkafka built
# with OpenSSL (the rdkafka crate's bundled build has no TLS): librdkafka's own ./configure
# --enable-ssl on a copy of the source in rdkafka-sys, static, built once into WORK. Needs the
# OpenSSL headers (Debian libssl-dev, installed when missing).
bench_build_tls() {
  local work="$1" src dir
  PERF_TLS="$work/rdkafka_performance_tls"
  if [ ! -x "$PERF_TLS" ]; then
    dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "install ok installed" \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev >/dev/null; }
    cargo fetch --manifest-path compat-tests/rdkafka/Cargo.toml >&2
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka | sort | tail -1)
    dir="$work/librdkafka-tls"
    rm -rf "$dir"; cp -r "$src" "$dir"
    printf '[bench] %s\n' "building librdkafka with OpenSSL from $src (a few minutes)" >&2
    (cd "$dir" && ./configure --enable-ssl --disable-zstd --disable-lz4-ext --disable-sasl --disable-curl --disable-gssapi >&2 \
      && make -j 2 -C src librdkafka.a >&2)
    gcc -O2 -o "$PERF_TLS" "$dir/examples/rdkafka_performance.c" -I"$dir/src" "$dir/src/librdkafka.a" \
      -lssl -lcrypto -lz -lpthread -lm -ldl -lrt
  fi
  export PERF_TLS
}
