#!/usr/bin/env bash
# Installs SoftHSMv2 (and pkcs11-tool) for development and tests, plus what the tests need to
# build the fault-injection PKCS#11 module (softhsm/fault-module/): a C compiler and pkcs11.h,
# and the `openssl` command the key-type tests verify signatures, ciphertexts and secrets with.
# Debian/Ubuntu: apt packages softhsm2, libsofthsm2, opensc, gcc, libc6-dev, libp11-kit-dev,
# openssl (needs root or sudo).
# Elsewhere: install SoftHSMv2 2.6+ from your package manager (Fedora: dnf install softhsm opensc;
# macOS: brew install softhsm opensc) and set KMS_PKCS11_MODULE to its libsofthsm2.so path.
set -euo pipefail
module=/usr/lib/softhsm/libsofthsm2.so
header=/usr/include/p11-kit-1/p11-kit/pkcs11.h
if [ -e "$module" ] && command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null &&
  [ -e "$header" ] && command -v cc >/dev/null && command -v openssl >/dev/null; then
  echo "SoftHSMv2 already installed: $(softhsm2-util --version)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "FAIL: no apt-get here; install SoftHSMv2 and OpenSC with your package manager (see this script's header)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q softhsm2 libsofthsm2 opensc gcc libc6-dev libp11-kit-dev openssl
[ -e "$module" ] || { echo "FAIL: $module missing after install" >&2; exit 1; }
[ -e "$header" ] || { echo "FAIL: $header missing after install" >&2; exit 1; }
echo "SoftHSMv2 installed: $(softhsm2-util --version)"
