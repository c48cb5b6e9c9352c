#!/usr/bin/env bash
# The Debian packages, checked by installing them (root; CI containers, not a machine with a
# real installation: it refuses to run when one is there). Builds them with
# `packaging/deb.sh --debug`, checks fields, files and modes (dpkg-deb), lintian and the units (systemd-analyze verify, and security --offline); installs both with
# dpkg -i; configures them the way README.Debian tells an operator (SoftHSM token made by the
# service user, PIN in the 0600 environment file, credential secret file, TLS files); runs the
# installed binaries with the installed configuration as the service users would (systemd is
# not PID 1 in CI containers, so `systemctl start` cannot run: the script applies the unit's
# User, EnvironmentFile, WorkingDirectory and UMask itself); does CreateKey/Encrypt/Decrypt
# with the AWS CLI and the proxy's /ping and signed GetHealthStatus with curl; reinstalls
# (upgrade path: configuration and data kept); purges (binaries and /etc gone, /var/lib/kms
# kept); and removes everything it made (tokens, users, /var/lib/kms). Loopback only.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

[ "$(id -u)" -eq 0 ] || { echo "FAIL: package.sh installs packages: run it as root" >&2; exit 1; }
for tool in dpkg dpkg-deb systemd-analyze softhsm2-util setpriv runuser openssl curl aws deluser man groff; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done
# The service sees the system SoftHSM configuration, not a test one.
unset SOFTHSM2_CONF AWS_PROFILE AWS_SESSION_TOKEN KMS_CONFIG XKS_PROXY_CONFIG || true
# A machine with an installation keeps it: nothing here may be replaced or purged.
for p in kms-server xks-proxy; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
    echo "FAIL: $p is installed here; package.sh installs and purges it (run it on a throwaway machine)" >&2
    exit 1
  fi
done
for u in kms xks-proxy; do
  if getent passwd "$u" >/dev/null || getent group "$u" >/dev/null; then
    echo "FAIL: user or group $u exists; package.sh creates and removes it" >&2; exit 1
  fi
done
for d in /var/lib/kms /etc/kms /etc/xks-proxy; do
  [ ! -e "$d" ] || { echo "FAIL: $d exists; package.sh creates and removes it" >&2; exit 1; }
done
# Minimal container images tell dpkg not to install manual pages; `man kms` is checked below.
if grep -Eqs '^path-exclude[= ]+/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/*; then
  echo "FAIL: dpkg is configured not to install /usr/share/man (path-exclude in /etc/dpkg/dpkg.cfg.d/)" >&2
  exit 1
fi
if softhsm2-util --show-slots 2>/dev/null | grep -Eq 'Label: +(kms-root|xks) *$'; then
  echo "FAIL: the system SoftHSM has a token kms-root or xks; package.sh makes and deletes them" >&2
  exit 1
fi

work=$(mktemp -d)
chmod 0700 "$work"
mkdir "$work/kms" "$work/xks" "$work/deb"
pids=()
installed=0
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$installed" = 1 ]; then
    softhsm2-util --delete-token --token kms-root >/dev/null 2>&1 || true
    softhsm2-util --delete-token --token xks >/dev/null 2>&1 || true
    dpkg --purge kms-server xks-proxy >/dev/null 2>&1 || true
    rm -rf /var/lib/kms
    deluser --quiet --system kms >/dev/null 2>&1 || true
    deluser --quiet --system xks-proxy >/dev/null 2>&1 || true
    delgroup --quiet --system kms >/dev/null 2>&1 || true
    delgroup --quiet --system xks-proxy >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
# mode_of DEB PATH: "perms owner/group" of PATH in DEB's data archive.
mode_of() { dpkg-deb --contents "$1" | awk -v p="./$2" '$6 == p { print $1, $2 }'; }
# as_service USER DIR ENVFILE CMD...: CMD as the unit runs it (User=, WorkingDirectory=,
# UMask=0077, EnvironmentFile=), standard output and error in the current `out` directory,
# in the background; appends its PID to `pids` (setpriv execs the command: the PID is the
# server's).
as_service() {
  local user=$1 dir=$2 envfile=$3; shift 3
  (
    cd "$dir"
    umask 0077
    set -a
    # shellcheck disable=SC1090
    . "$envfile"
    set +a
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
  ) >"$out/stdout" 2>"$out/stderr" &
  pids+=("$!")
}
# stop PID: SIGTERM (the unit's KillSignal), then its exit status must be 0 within 20 s.
stop() {
  local pid=$1 _
  kill -TERM "$pid"
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$pid"
}

# no_wx_memory PID: the process has no writable and executable mapping and no executable
# anonymous memory ([vdso] and [vsyscall] aside): what MemoryDenyWriteExecute=yes forbids, so
# the server and its PKCS#11 module (SoftHSM here) run under it. Checked after real work.
no_wx_memory() {
  ! awk '$2 ~ /w.x/ || ($2 ~ /x/ && ($6 == "" || $6 ~ /^\[(heap|stack|anon)/)) { print; bad = 1 } END { exit !bad }' "/proc/$1/maps"
}

echo "== build (packaging/deb.sh --debug) =="
bash "$root/packaging/deb.sh" --debug --out "$work/deb" >"$work/debs"
mapfile -t debs <"$work/debs"
kms_deb=${debs[0]}
xks_deb=${debs[1]}
started=$(date +%s)
version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
arch=$(dpkg --print-architecture)
check "two packages named <name>_<version>_<arch>.deb" test \
  "$(basename "$kms_deb") $(basename "$xks_deb")" = "kms-server_${version}_$arch.deb xks-proxy_${version}_$arch.deb"

echo "== dpkg-deb --info / --contents =="
for deb in "$kms_deb" "$xks_deb"; do
  name=$(dpkg-deb --field "$deb" Package)
  check "$name: Version is Cargo.toml's ($version)" test "$(dpkg-deb --field "$deb" Version)" = "$version"
  check "$name: Architecture is dpkg's ($arch)" test "$(dpkg-deb --field "$deb" Architecture)" = "$arch"
  check "$name: Depends on libc6 (from dpkg-shlibdeps or ldd) and adduser" \
    grep -Eq '^libc6( \(>= [0-9.]+\))?, .*adduser' <<<"$(dpkg-deb --field "$deb" Depends)"
  check "$name: Recommends softhsm2" test "$(dpkg-deb --field "$deb" Recommends)" = softhsm2
  check "$name: the description says the service is not started" \
    grep -q "not started" <<<"$(dpkg-deb --field "$deb" Description)"
  check "$name: maintainer scripts postinst, prerm, postrm" \
    bash -c "dpkg-deb --info '$deb' | grep -q ' postinst ' && dpkg-deb --info '$deb' | grep -q ' prerm ' && dpkg-deb --info '$deb' | grep -q ' postrm '"
  check "$name: every file is root/root" bash -c "! dpkg-deb --contents '$deb' | awk '{print \$2}' | grep -vx root/root"
done
check "kms-server: Description says purge never removes /var/lib/kms" \
  grep -q "never /var/lib/kms" <<<"$(dpkg-deb --field "$kms_deb" Description)"
for f in usr/bin/kms usr/bin/kms-cluster-key; do
  check "kms-server: /$f is 0755" test "$(mode_of "$kms_deb" "$f")" = "-rwxr-xr-x root/root"
done
check "xks-proxy: /usr/bin/xks-proxy is 0755" test "$(mode_of "$xks_deb" usr/bin/xks-proxy)" = "-rwxr-xr-x root/root"
check "kms-server: /etc/kms/kms.toml is 0644" test "$(mode_of "$kms_deb" etc/kms/kms.toml)" = "-rw-r--r-- root/root"
check "kms-server: /etc/kms/kms.env is 0600" test "$(mode_of "$kms_deb" etc/kms/kms.env)" = "-rw------- root/root"
check "xks-proxy: /etc/xks-proxy/xks-proxy.toml is 0644" test "$(mode_of "$xks_deb" etc/xks-proxy/xks-proxy.toml)" = "-rw-r--r-- root/root"
check "xks-proxy: /etc/xks-proxy/xks-proxy.env is 0600" test "$(mode_of "$xks_deb" etc/xks-proxy/xks-proxy.env)" = "-rw------- root/root"
check "kms-server: unit in /lib/systemd/system, 0644" test "$(mode_of "$kms_deb" lib/systemd/system/kms.service)" = "-rw-r--r-- root/root"
check "xks-proxy: unit in /lib/systemd/system, 0644" test "$(mode_of "$xks_deb" lib/systemd/system/xks-proxy.service)" = "-rw-r--r-- root/root"
check "kms-server: conffiles are the two /etc files" test "$(dpkg-deb --ctrl-tarfile "$kms_deb" | tar -xO ./conffiles)" = $'/etc/kms/kms.env\n/etc/kms/kms.toml'
check "xks-proxy: conffiles are the two /etc files" test "$(dpkg-deb --ctrl-tarfile "$xks_deb" | tar -xO ./conffiles)" = $'/etc/xks-proxy/xks-proxy.env\n/etc/xks-proxy/xks-proxy.toml'
check "kms-server: README.Debian and copyright in /usr/share/doc" \
  bash -c "dpkg-deb --contents '$kms_deb' | grep -q ' ./usr/share/doc/kms-server/README.Debian$' && dpkg-deb --contents '$kms_deb' | grep -q ' ./usr/share/doc/kms-server/copyright$'"
# Manual pages: one per binary and one per configuration file, gzipped, 0644; each renders
# with groff's warnings all on (-ww) and none printed (lintian's groff-message runs man(1)).
# pages_for_binaries DEB: every /usr/bin/X of DEB has usr/share/man/man8/X.8.gz (or man1).
pages_for_binaries() {
  local contents b
  contents=$(dpkg-deb --contents "$1")
  for b in $(awk '$6 ~ /^\.\/usr\/bin\/./ { sub(".*/", "", $6); print $6 }' <<<"$contents"); do
    grep -Eq " \./usr/share/man/man[18]/$b\.[18]\.gz$" <<<"$contents" || { echo "no manual page for /usr/bin/$b"; return 1; }
  done
}
pages_are_0644() {
  ! dpkg-deb --contents "$1" | awk '$6 ~ /^\.\/usr\/share\/man\/.*\.gz$/ && $1 != "-rw-r--r--" { print; bad = 1 } END { exit !bad }'
}
renders_cleanly() { # PAGE.gz
  local out
  out=$(zcat "$1" | LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 2>&1) || return 1
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
mkdir "$work/pages"
for deb in "$kms_deb" "$xks_deb"; do
  name=$(dpkg-deb --field "$deb" Package)
  check "$name: a manual page for every binary" pages_for_binaries "$deb"
  check "$name: manual pages are 0644" pages_are_0644 "$deb"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/pages" --wildcards './usr/share/man/*'
done
check "every page of packaging/man/ is in a package, in the directory of its section" test \
  "$(cd "$work/pages/usr/share/man" && find . -name '*.gz' | sort)" = \
  "$(cd "$root/packaging/man" && for f in *; do echo "./man${f##*.}/$f.gz"; done | sort)"
check "the configuration files' pages: kms.toml(5) in kms-server, xks-proxy.toml(5) in xks-proxy" bash -c \
  'dpkg-deb --contents "$1" | grep -q " \./usr/share/man/man5/kms\.toml\.5\.gz$" &&
   dpkg-deb --contents "$2" | grep -q " \./usr/share/man/man5/xks-proxy\.toml\.5\.gz$"' _ "$kms_deb" "$xks_deb"
for page in "$work"/pages/usr/share/man/man*/*.gz; do
  check "$(basename "$page" .gz) renders without groff warnings" renders_cleanly "$page"
done

# Safe defaults: loopback, a PKCS#11 root, a configured credential (so the development one is
# not in force), no PIN or secret in the files.
dpkg-deb --fsys-tarfile "$kms_deb" | tar -xO ./etc/kms/kms.toml >"$work/kms.toml"
check "kms.toml: listens on 127.0.0.1" grep -q '^listen = "127\.0\.0\.1:' "$work/kms.toml"
check "kms.toml: data in /var/lib/kms" grep -q '^data_dir = "/var/lib/kms"' "$work/kms.toml"
check "kms.toml: PKCS#11 root, PIN from the environment" \
  bash -c "grep -q '^kind = \"pkcs11\"' '$work/kms.toml' && grep -q '^pin_env = ' '$work/kms.toml'"
check "kms.toml: one credential with a secret file (no development credential, no inline secret)" \
  bash -c "grep -q '^secret_access_key_file = ' '$work/kms.toml' && ! grep -Eq '^(secret_access_key|development|pin) *=' '$work/kms.toml' && ! grep -q AKIAIOSFODNN7EXAMPLE '$work/kms.toml'"

command -v lintian >/dev/null || { echo "FAIL: lintian is not installed (apt-get install lintian)" >&2; exit 1; }
echo "== lintian (errors fail; warnings reported) =="
if lintian --fail-on error "$kms_deb" "$xks_deb" >"$work/lintian" 2>&1; then lintian_ok=true; else lintian_ok=false; fi
grep -E '^[EW]:' "$work/lintian" || true
check "lintian: no errors" $lintian_ok
check "lintian: no manual page tags (no-manual-page, groff-message, ...)" \
  bash -c "! grep -E 'manual-page|manpage|groff-message' '$work/lintian'"

echo "== dpkg -i =="
installed=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$kms_deb" "$xks_deb" </dev/null >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log" >&2; echo "FAIL: dpkg -i" >&2; exit 1; }
check "postinst: system users kms and xks-proxy (nologin)" \
  bash -c "getent passwd kms | grep -q ':/usr/sbin/nologin$' && getent passwd xks-proxy | grep -q ':/usr/sbin/nologin$'"
if getent group softhsm >/dev/null; then
  check "postinst: kms and xks-proxy in group softhsm" \
    bash -c "id -nG kms | grep -qw softhsm && id -nG xks-proxy | grep -qw softhsm"
fi
check "installed: dpkg --verify finds every file as packaged (DEBIAN/md5sums)" dpkg --verify kms-server xks-proxy
# man NAME finds the installed page through the system's manpath (no MANPATH) and shows it.
man_shows() { # NAME SECTION
  local shown
  [ "$(env -u MANPATH man -w "$1")" = "/usr/share/man/man$2/$1.$2.gz" ] &&
    shown=$(env -u MANPATH MANWIDTH=80 man "$1" 2>/dev/null) && grep -Eq "^ +$1 +- " <<<"$shown"
}
for page in kms.8 kms-cluster-key.8 kms.toml.5 xks-proxy.8 xks-proxy.toml.5; do
  check "installed: man ${page%.*} shows ${page%.*}(${page##*.})" man_shows "${page%.*}" "${page##*.}"
done
check "postinst: /var/lib/kms is 0750 kms:kms" test "$(stat -c '%a %U:%G' /var/lib/kms)" = "750 kms:kms"
check "postinst: /etc/kms/credentials is 0750 root:kms" test "$(stat -c '%a %U:%G' /etc/kms/credentials)" = "750 root:kms"
check "installed: /etc/kms/kms.env is 0600 root" test "$(stat -c '%a %U' /etc/kms/kms.env)" = "600 root"

echo "== systemd-analyze =="
for unit in kms xks-proxy; do
  check "systemd-analyze verify $unit.service" systemd-analyze verify "/lib/systemd/system/$unit.service"
  # Exposure 0.0 (best) .. 10.0; --threshold is in tenths. The units score 1.6 with systemd 252.
  if systemd-analyze security --offline=true "/lib/systemd/system/$unit.service" >"$work/security" 2>&1; then
    grep Overall "$work/security" || true
    check "systemd-analyze security $unit.service: exposure at most 2.0" bash -c \
      'systemd-analyze security --offline=true --threshold=20 "$1" >/dev/null 2>&1' _ "/lib/systemd/system/$unit.service"
  else
    echo "skip systemd-analyze security: no --offline mode here (systemd < 250): $(head -n1 "$work/security")"
  fi
done

echo "== kms: token, PIN and credential as README.Debian says; started as the service user =="
pin=$(openssl rand -hex 8)
runuser -u kms -- softhsm2-util --init-token --free --label kms-root --so-pin "$(openssl rand -hex 8)" --pin "$pin" >/dev/null
# KMS_SERVER__LISTEN: a free loopback port for this run (the file's 4599 may be taken).
printf 'KMS_ROOT_PIN=%s\nKMS_SERVER__LISTEN=127.0.0.1:0\n' "$pin" >>/etc/kms/kms.env
install -m 0640 -g kms /dev/null /etc/kms/credentials/admin.secret
openssl rand -base64 30 >/etc/kms/credentials/admin.secret
check "kms.env is still 0600 root after editing" test "$(stat -c '%a %U' /etc/kms/kms.env)" = "600 root"

out=$work/kms
as_service kms /var/lib/kms /etc/kms/kms.env /usr/bin/kms --config /etc/kms/kms.toml serve
kms_pid=${pids[-1]}
wait_for_server "$out"
echo "kms at $endpoint (pid $kms_pid)"
check "kms runs as user kms" test "$(ps -o user= -p "$kms_pid")" = kms
check "kms uses the PKCS#11 root (no root key file)" test ! -e /var/lib/kms/root.key

export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIAKMSADMINISTRATOR
AWS_SECRET_ACCESS_KEY=$(cat /etc/kms/credentials/admin.secret)
export AWS_SECRET_ACCESS_KEY
kms() { aws kms --endpoint-url "$endpoint" "$@"; }
key_arn=$(kms create-key --description "package test" --query KeyMetadata.Arn --output text)
check "aws kms create-key with the configured credential" \
  grep -qE '^arn:aws:kms:us-east-1:111122223333:key/[0-9a-f-]{36}$' <<<"$key_arn"
printf 'installed by dpkg' >"$work/plain"
kms encrypt --key-id "$key_arn" --plaintext "fileb://$work/plain" --encryption-context app=deb \
  --query CiphertextBlob --output text | base64 -d >"$work/blob"
kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context app=deb \
  --query Plaintext --output text | base64 -d >"$work/decrypted"
check "aws kms encrypt/decrypt round trip" cmp -s "$work/plain" "$work/decrypted"
if AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
    aws kms list-keys --endpoint-url "$endpoint" >/dev/null 2>"$work/err"; then
  check "the development credential is refused" false
else
  check "the development credential is refused (UnrecognizedClientException)" grep -q UnrecognizedClientException "$work/err"
fi
check "store and audit log in /var/lib/kms, owned by kms, mode 0600 (UMask=0077)" \
  test "$(stat -c '%a %U' /var/lib/kms/kms.sqlite3 /var/lib/kms/audit.log | sort -u)" = "600 kms"
check "kms: no W+X or anonymous executable memory after the requests (MemoryDenyWriteExecute)" no_wx_memory "$kms_pid"
check "kms stops on SIGTERM with status 0" stop "$kms_pid"
check "kms says it stopped" grep -q "kms stopped" "$out/stderr"

echo "== reinstall (the upgrade path): configuration and data kept =="
DEBIAN_FRONTEND=noninteractive dpkg -i "$kms_deb" </dev/null >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log" >&2; echo "FAIL: dpkg -i (again)" >&2; exit 1; }
check "the edited kms.env is kept" grep -q "^KMS_ROOT_PIN=$pin$" /etc/kms/kms.env
check "the credential secret file is kept" test -s /etc/kms/credentials/admin.secret
as_service kms /var/lib/kms /etc/kms/kms.env /usr/bin/kms --config /etc/kms/kms.toml serve
kms_pid=${pids[-1]}
wait_for_server "$out"
kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context app=deb \
  --query Plaintext --output text | base64 -d >"$work/decrypted2"
check "a ciphertext made before the reinstall decrypts after it" cmp -s "$work/plain" "$work/decrypted2"
check "kms stops on SIGTERM with status 0 (after the reinstall)" stop "$kms_pid"

echo "== xks-proxy: token, PIN, TLS files and credential as README.Debian says =="
xpin=$(openssl rand -hex 8)
runuser -u xks-proxy -- softhsm2-util --init-token --free --label xks --so-pin "$(openssl rand -hex 8)" --pin "$xpin" >/dev/null
printf 'XKS_HSM_PIN=%s\nXKS_LOG=warn\n' "$xpin" >>/etc/xks-proxy/xks-proxy.env
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout /etc/xks-proxy/tls/server.key \
  -out /etc/xks-proxy/tls/server.pem 2>/dev/null
chgrp xks-proxy /etc/xks-proxy/tls/server.key
chmod 0640 /etc/xks-proxy/tls/server.key
xks_akid=XKSPACKAGETESTACCESSKEY
xks_secret=$(openssl rand -base64 36)
install -m 0640 -g xks-proxy /dev/null /etc/xks-proxy/credentials/keystore-1.toml
printf '[[credentials]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' "$xks_akid" "$xks_secret" \
  >/etc/xks-proxy/credentials/keystore-1.toml
# Free loopback ports for this run (an operator edits the file the same way).
sed -i -e 's/^listen = "127\.0\.0\.1:8443"/listen = "127.0.0.1:0"/' \
  -e 's/^listen = "127\.0\.0\.1:9464"/listen = "127.0.0.1:0"/' /etc/xks-proxy/xks-proxy.toml
check "xks-proxy.toml: the API and metrics listeners were on loopback, now on free ports" \
  test "$(grep -c '^listen = "127\.0\.0\.1:0"$' /etc/xks-proxy/xks-proxy.toml)" = 2
out=$work/xks
check "xks-proxy check-config accepts the installed configuration" bash -c \
  "set -a; . /etc/xks-proxy/xks-proxy.env; set +a; setpriv --reuid=xks-proxy --regid=xks-proxy --init-groups -- \
   /usr/bin/xks-proxy --config /etc/xks-proxy/xks-proxy.toml check-config | grep -q ': valid'"
as_service xks-proxy / /etc/xks-proxy/xks-proxy.env /usr/bin/xks-proxy --config /etc/xks-proxy/xks-proxy.toml run
xks_pid=${pids[-1]}
wait_for_server "$out" https
echo "xks-proxy at $endpoint (pid $xks_pid)"
check "xks-proxy runs as user xks-proxy" test "$(ps -o user= -p "$xks_pid")" = xks-proxy
ping_status=""
for _ in $(seq 100); do # the first health probe runs at start
  ping_status=$(curl -s -o /dev/null -w '%{http_code}' --cacert /etc/xks-proxy/tls/server.pem "$endpoint/ping" || true)
  [ "$ping_status" = 200 ] && break
  sleep 0.1
done
check "GET /ping over TLS answers 200 (the token is usable)" test "$ping_status" = 200
health='{"requestMetadata":{"kmsRequestId":"package-test","kmsOperation":"CreateCustomKeyStore"}}'
xks_health() { # SECRET: a SigV4-signed GetHealthStatus; prints the status, body in $work/health
  curl -s -o "$work/health" -w '%{http_code}' --cacert /etc/xks-proxy/tls/server.pem \
    --aws-sigv4 aws:amz:us-east-1:kms-xks-proxy --user "$xks_akid:$1" -H 'Content-Type: application/json' \
    --data "$health" "$endpoint/keystore-1/kms/xks/v1/health"
}
health_status=$(xks_health "$xks_secret")
[ "$health_status" = 200 ] || echo "GetHealthStatus: $health_status $(cat "$work/health")"
check "signed GetHealthStatus (curl --aws-sigv4) answers 200" test "$health_status" = 200
check "GetHealthStatus reports the fleet size" grep -Eq '"xksProxyFleetSize": *1' "$work/health"
check "GetHealthStatus with a wrong secret answers 401" test "$(xks_health "$(openssl rand -base64 36)")" = 401
check "xks-proxy: no W+X or anonymous executable memory (MemoryDenyWriteExecute)" no_wx_memory "$xks_pid"
check "xks-proxy stops on SIGTERM with status 0" stop "$xks_pid"

echo "== dpkg --purge =="
softhsm2-util --delete-token --token kms-root >/dev/null
softhsm2-util --delete-token --token xks >/dev/null
dpkg --purge kms-server xks-proxy >"$work/dpkg.log" 2>&1 || {
  cat "$work/dpkg.log" >&2; echo "FAIL: dpkg --purge" >&2; exit 1; }
check "purge: the binaries are gone" \
  bash -c "[ ! -e /usr/bin/kms ] && [ ! -e /usr/bin/kms-cluster-key ] && [ ! -e /usr/bin/xks-proxy ]"
check "purge: the units are gone" \
  bash -c "[ ! -e /lib/systemd/system/kms.service ] && [ ! -e /lib/systemd/system/xks-proxy.service ]"
check "purge: /etc/kms and /etc/xks-proxy are gone" bash -c "[ ! -e /etc/kms ] && [ ! -e /etc/xks-proxy ]"
check "purge: /var/lib/kms and its store are kept" test -s /var/lib/kms/kms.sqlite3
check "purge says what it kept" grep -q "/var/lib/kms .* kept" "$work/dpkg.log"
echo "package: $((  $(date +%s) - started )) s after the build"

echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
