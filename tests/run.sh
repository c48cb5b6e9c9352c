#!/usr/bin/env bash
# The test command: installs SoftHSMv2 if it is missing, then runs the whole test suite on the
# software root and again on the PKCS#11 root (SoftHSMv2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash softhsm/install.sh
echo "== test suite, software root =="
cargo test --workspace --locked
echo "== test suite, PKCS#11 root (SoftHSMv2) =="
KMS_TEST_BACKEND=pkcs11 cargo test --locked --tests -p kms
