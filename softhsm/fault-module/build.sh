#!/usr/bin/env bash
# Builds the fault-injection PKCS#11 module (tests only; see fault.c's header):
#   softhsm/fault-module/build.sh OUT.so
# Needs a C compiler and the PKCS#11 header from libp11-kit-dev (softhsm/install.sh installs
# both). Writes OUT.so atomically (a temporary file renamed into place), so concurrent builds
# into the same path are safe.
set -euo pipefail
out=${1:?usage: softhsm/fault-module/build.sh OUT.so}
src=$(cd "$(dirname "$0")" && pwd)/fault.c
cc=${CC:-cc}
include=/usr/include/p11-kit-1
[ -e "$include/p11-kit/pkcs11.h" ] || {
  echo "FAIL: $include/p11-kit/pkcs11.h missing: run softhsm/install.sh (package libp11-kit-dev)" >&2
  exit 1
}
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
"$cc" -shared -fPIC -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
  -fvisibility=hidden -I"$include" -o "$tmp" "$src" -ldl -lpthread
mv -f "$tmp" "$out"
