#!/usr/bin/env bash
# Creates a throwaway SoftHSM token directory with the token labels the example configs use.
#   softhsm/make-token.sh DIR      -> DIR/softhsm2.conf, DIR/tokens/, DIR/user.pin
# Tokens: kms-root (default key store root), kms-cluster-a and kms-cluster-b (a two-member
# CloudHSM-style cluster), xks-keys (the XKS proxy's key manager). User PIN in DIR/user.pin,
# SO PIN 12345678 (throwaway only!). Prints the SOFTHSM2_CONF to export.
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
pin=${KMS_SOFTHSM_PIN:-1234}
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
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
