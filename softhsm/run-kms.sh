#!/usr/bin/env bash
# One command to run the kms server with its default key store on SoftHSMv2:
#   softhsm/run-kms.sh
# Installs SoftHSM if needed, creates throwaway tokens under ./kms-data/softhsm, and starts the
# server with hsm-config/kms-softhsm.toml (PIN read from a file, never from the command line).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash softhsm/install.sh
bash softhsm/make-token.sh kms-data/softhsm >/dev/null
export SOFTHSM2_CONF=$root/kms-data/softhsm/softhsm2.conf
exec cargo run --release --bin kms -- --config hsm-config/kms-softhsm.toml
