#!/usr/bin/env bash
# Creates a throwaway SoftHSM token directory with the token labels the example configs use.
#   softhsm/make-token.sh DIR      -> DIR/softhsm2.conf, DIR/tokens/, DIR/user.pin
# Tokens: kms-root (default key store root), kms-cluster-a and kms-cluster-b (a two-member
# CloudHSM-style cluster), xks-keys (the XKS proxy's key manager). User PIN in DIR/user.pin,
# SO PIN 12345678 (throwaway only!). The two cluster tokens get the same cluster key, and
# DIR/customerCA.crt is the cluster's trust anchor. Prints the SOFTHSM2_CONF to export.
set -euo pipefail
dir=${1:?usage: softhsm/make-token.sh DIR}
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF=$dir/softhsm2.conf
pin=${KMS_SOFTHSM_PIN:-kmsuserPassw0rd}
umask 077
printf '%s\n' "$pin" >"$dir/user.pin"
for label in kms-root kms-cluster-a kms-cluster-b xks-keys; do
  if softhsm2-util --show-slots | grep -qE "Label:[[:space:]]+$label[[:space:]]*$"; then
    echo "token $label exists"
  else
    softhsm2-util --init-token --free --label "$label" --so-pin 12345678 --pin "$pin" >/dev/null
    echo "token $label created"
  fi
done
# The cluster key: the same AES-256 wrapping key on every member of the kms-cluster-* cluster
# (what an HSM vendor's cloning or security-world join does). It is provisioned here, by the
# operator, never by the kms server, with `kms-cluster-key` (private, sensitive, non-extractable,
# wrap/unwrap only: pkcs11-tool cannot turn encrypt/decrypt off); the temporary file is shredded
# at once.
repo=$(cd "$(dirname "$0")/.." && pwd)
provision=${KMS_CLUSTER_KEY_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/kms-cluster-key}
if [ ! -x "$provision" ]; then
  (cd "$repo" && cargo build --release --quiet --bin kms-cluster-key)
fi
key=$(mktemp)
head -c 32 /dev/urandom >"$key"
for label in kms-cluster-a kms-cluster-b; do
  "$provision" --token-label "$label" --pin-file "$dir/user.pin" --key-file "$key" \
    --label kms-cluster-key || { shred -u "$key" 2>/dev/null || rm -f "$key"; exit 1; }
done
shred -u "$key" 2>/dev/null || rm -f "$key"
# The cluster's trust anchor certificate (CreateCustomKeyStore's TrustAnchorCertificate).
if [ ! -f "$dir/customerCA.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=kms-cluster customer CA" -keyout "$dir/customerCA.key" -out "$dir/customerCA.crt" 2>/dev/null
fi
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
