#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each, one after the other, from
# the committed seeds (fuzz/seeds/TARGET) plus the growing corpus (fuzz/corpus/TARGET, not
# committed). Fails when a target finds a crash (kept in fuzz/artifacts/TARGET/).
#
#   fuzz/run.sh 20                      # CI: 20 s per target
#   fuzz/run.sh 3600 kms_operation_json # one target for an hour
#   fuzz/run.sh 14400                   # the long run (docs/fuzzing.md): 4 h per target
#
# FUZZ_ARGS: extra libFuzzer flags for every target (e.g. `-dict=...`).
# FUZZ_FLAGS: cargo-fuzz build flags, the same for build and run (default `-O`: release, address
# sanitizer). CI uses `--dev -s none` (debug build without sanitizer): half the build time,
# and a panic or an assertion is all a short run can find in our safe Rust anyway.
#
# Needs a nightly toolchain (`rustup toolchain list`) and cargo-fuzz; installs cargo-fuzz when
# missing and fails loudly when nightly is missing. SoftHSMv2 is needed by xks_proxy_request
# (softhsm/install.sh).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
# Each input runs in one process with state (see src/lib.rs): allow slow inputs and some memory.
rss_mb=${FUZZ_RSS_MB:-4096}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "FAIL: cargo fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
  cargo +stable install cargo-fuzz --locked --version 0.13.2
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

read -r -a flags <<<"${FUZZ_FLAGS:--O}"
profile=release
for f in "${flags[@]}"; do [ "$f" = "--dev" ] && profile=debug; done
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
  echo "== building the fuzz targets (cargo fuzz build ${flags[*]}) =="
  start=$(date +%s)
  cargo +nightly fuzz build "${flags[@]}"
  echo "built in $(( $(date +%s) - start )) s"
fi
# The binaries are run directly (what `cargo fuzz run` does after building), so that editing
# the sources during a long run does not trigger a rebuild. FUZZ_NO_BUILD=1 skips the build.
bin_dir=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/$profile

# The bundled SQLite (rusqlite) trips ASan's one-definition-rule check at start-up (a global of
# sqlite3.c seen twice by the instrumented link); it is not a memory error, so that check is off.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${secs} s =="
  log="artifacts/$t/last-run.log"
  set +e
  "$bin_dir/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$secs" -rss_limit_mb="$rss_mb" -timeout=30 \
    -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  # The last status line (runs, coverage, corpus, exec/s) and the final stats.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  found=$(find "artifacts/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \
    -o -name 'leak-*' \) -print -quit)
  if [ $rc -ne 0 ] || [ -n "$found" ]; then
    echo "FAIL: $t found a problem (exit $rc); see fuzz/$log and fuzz/artifacts/$t/" >&2
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 >&2 || true
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAIL: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s), ${secs} s each, nothing found"
