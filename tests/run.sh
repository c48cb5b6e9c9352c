#!/usr/bin/env bash
# The test command: installs SoftHSMv2 if it is missing, then runs the whole test suite: the kms
# suite on the software root and again on the PKCS#11 root (SoftHSMv2), and the xks-proxy suite
# under cargo-nextest (one process per test: SoftHSM's C_Initialize is process-global and its
# slot list is read once per process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash softhsm/install.sh
if ! command -v cargo-nextest >/dev/null; then
  echo "cargo-nextest is missing: installing it from crates.io"
  cargo install cargo-nextest --locked
fi
echo "== kms test suite, software root =="
cargo test -p kms --locked
echo "== kms test suite, PKCS#11 root (SoftHSMv2) =="
KMS_TEST_BACKEND=pkcs11 cargo test --locked --tests -p kms
echo "== xks-proxy test suite (SoftHSMv2, one process per test) =="
cargo nextest run -p xks-proxy --locked
