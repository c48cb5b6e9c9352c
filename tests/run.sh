#!/usr/bin/env bash
# The test command: installs SoftHSMv2 if it is missing, then runs the whole test suite: every
# crate of the workspace on the software root, then the kms suite again on the PKCS#11 root
# (SoftHSMv2). Everything runs under cargo-nextest (one process per test: SoftHSM's
# C_Initialize is process-global and its slot list is read once per process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash softhsm/install.sh
if ! command -v cargo-nextest >/dev/null; then
  echo "cargo-nextest is missing: installing it from crates.io"
  cargo install cargo-nextest --locked
fi
echo "== workspace test suite (kms on the software root, xks-proxy, shared crates) =="
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --doc --locked
echo "== kms test suite, PKCS#11 root (SoftHSMv2) =="
KMS_TEST_BACKEND=pkcs11 cargo nextest run -p kms --locked --no-fail-fast
