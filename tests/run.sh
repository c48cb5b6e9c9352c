#!/usr/bin/env bash
# The test command: installs SoftHSMv2 if it is missing and starts a throwaway PostgreSQL
# cluster (tests/pg/cluster.sh, installing PostgreSQL if it is missing), then runs the whole
# test suite: every crate of the workspace on the software root and SQLite (the store suite and
# the multi-node tests, multi_node and multi_node_stores, use PostgreSQL), the kms suite again on the PKCS#11 root (SoftHSMv2),
# and the kms SDK suite on a PostgreSQL-backed node, with TLS to PostgreSQL (tests/pg_tls.rs, on
# a hostssl-only cluster of its own). Everything runs under cargo-nextest (one
# process per test: SoftHSM's C_Initialize is process-global and its slot list is read once per
# process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash softhsm/install.sh
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/kms-test-pg.XXXXXX")
eval "$(bash tests/pg/cluster.sh start "$pg_dir")"
trap 'bash tests/pg/cluster.sh stop "$pg_dir"' EXIT
if ! command -v cargo-nextest >/dev/null; then
  echo "cargo-nextest is missing: installing it from crates.io"
  cargo install cargo-nextest --locked
fi
echo "== workspace test suite (kms on the software root, xks-proxy, shared crates) =="
cargo nextest run --workspace --locked --no-fail-fast -E 'not binary(pg_tls)'
cargo test --workspace --doc --locked
echo "== kms test suite, PKCS#11 root (SoftHSMv2) =="
# `--workspace` with a filter, not `-p kms`: the same feature set as the first run, so nothing
# is rebuilt (with `-p kms` Cargo unifies features over kms alone, and kms and every test binary
# were compiled again: minutes of CI).
# Only the binaries whose servers take their root from KMS_TEST_BACKEND: the unit tests and the
# binaries that always use one root (their own SoftHSM token, or the software root) ran above.
root_independent='kind(lib) | kind(bin) | binary(pg_tls) | binary(backup) | binary(cluster_key_tool)
  | binary(durability) | binary(listener) | binary(man_pages) | binary(/^pkcs11_/) | binary(root_check) | binary(shutdown)
  | binary(store_suite) | binary(tls) | binary(trusted_proxies) | binary(xks_proxy_end_to_end)'
KMS_TEST_BACKEND=pkcs11 cargo nextest run --workspace --locked --no-fail-fast \
  -E "package(kms) & not ($root_independent)"
echo "== kms SDK suite on a PostgreSQL-backed node (software root), and TLS to PostgreSQL =="
KMS_TEST_STORE=postgres cargo nextest run --workspace --locked --no-fail-fast \
  -E 'package(kms) & (binary(/^sdk_/) | binary(smoke) | binary(durability) | binary(shutdown) | binary(seeding) | binary(pg_tls))'
