#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a loopback port, for the tests and for developers.
#
#   eval "$(bash tests/pg/cluster.sh start [DIR] [hostssl-only])"  # starts it, prints the exports below
#   bash tests/pg/cluster.sh stop [DIR]              # stops it and removes DIR
#   bash tests/pg/cluster.sh restart [DIR]           # fast shutdown, then start again (same port)
#   bash tests/pg/cluster.sh install-cert DIR CERT KEY  # serve another certificate: copies CERT
#                         and KEY over DIR/tls/server.{crt,key} and reloads the configuration
#                         (pg_ctl reload: existing sessions keep theirs, new ones get the new one)
#
# Prints (for eval):
#   KMS_TEST_PG_URL       postgres://kms@127.0.0.1:PORT/postgres (the admin database; each
#                         test creates its own database through it)
#   KMS_TEST_PG_PASSWORD  the password of role `kms` (SCRAM authentication, as in production)
#   KMS_TEST_PG_DIR       DIR
#   KMS_TEST_PG_CA_FILE   DIR/tls/ca.crt: the throwaway CA that signed the server certificate
#
# TLS: every cluster serves it (ssl = on) with a server certificate for 127.0.0.1 and
# localhost, signed by a throwaway CA made with openssl at start (DIR/tls; ECDSA P-256, valid
# for a day; the CA's key is removed once it has signed). Plain TCP is accepted too, unless
# `hostssl-only` is given: then pg_hba.conf accepts TCP connections over TLS only (a client
# without TLS gets "no pg_hba.conf entry ... no encryption").
#
# Installs PostgreSQL from the distribution packages when it is missing (Debian:
# apt-get install postgresql). initdb refuses to run as root, so as root the cluster belongs to
# the `postgres` system user (created by the package). Fails loudly; never skips.
set -euo pipefail
cmd=${1:-}
dir=${2:-${TMPDIR:-/tmp}/kms-test-pg}

find_bin() {
  local b
  for b in /usr/lib/postgresql/*/bin; do
    if [ -x "$b/initdb" ]; then echo "$b"; return 0; fi
  done
  return 1
}

# Makes DIR/tls: ca.crt, server.crt, server.key (owned by the cluster's user).
make_tls() {
  local t=$1/tls
  mkdir -p "$t"
  command -v openssl >/dev/null || { echo "FAIL: openssl is missing (apt-get install openssl)" >&2; exit 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=kms test PostgreSQL CA" -keyout "$t/ca.key" -out "$t/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >/dev/null 2>&1 || { echo "FAIL: openssl (CA)" >&2; exit 1; }
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$t/server.key" -out "$t/server.csr" >/dev/null 2>&1 ||
    { echo "FAIL: openssl (server key)" >&2; exit 1; }
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$t/server.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
    -days 1 -extfile "$t/server.ext" -out "$t/server.crt" >/dev/null 2>&1 ||
    { echo "FAIL: openssl (server certificate)" >&2; exit 1; }
  rm -f "$t/ca.key" "$t/ca.srl" "$t/server.csr" "$t/server.ext"
  chmod 600 "$t/server.key"
  chmod 755 "$t"
  chmod 644 "$t/ca.crt" "$t/server.crt"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$t"; fi
}

case "$cmd" in
start)
  mode=${3:-}
  case "$mode" in
  "" | hostssl-only) ;;
  *) echo "usage: $0 start [DIR] [hostssl-only]" >&2; exit 64 ;;
  esac
  if ! bin=$(find_bin); then
    echo "PostgreSQL server is missing: installing it (apt-get install postgresql)" >&2
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
    else
      echo "FAIL: run as root or install the postgresql package" >&2
      exit 1
    fi
    bin=$(find_bin) || { echo "FAIL: no initdb after installing postgresql" >&2; exit 1; }
  fi
  # A previous cluster in DIR: stop it and start from nothing.
  if [ -f "$dir/data/postmaster.pid" ]; then
    bash "$0" stop "$dir" >&2 || true
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
    chown postgres: "$dir"
    run=(runuser -u postgres --)
  fi
  password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 600 "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U kms --pwfile="$dir/pwfile" \
    --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; echo "FAIL: initdb" >&2; exit 1; }
  rm -f "$dir/pwfile"
  make_tls "$dir"
  if [ "$mode" = hostssl-only ]; then
    # TCP over TLS only (SCRAM as before); the Unix socket stays for local administration.
    printf '%s\n' "local all all scram-sha-256" \
      "hostssl all all 127.0.0.1/32 scram-sha-256" "hostssl all all ::1/128 scram-sha-256" \
      >"$dir/data/pg_hba.conf"
  fi
  # A free loopback port: ask the kernel for one.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  # Loopback only; enough connections for parallel tests (each node: a pool, a listener, a
  # lease); fsync stays on (durability tests kill servers, not the database).
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=400 -c shared_buffers=64MB -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key" >&2 ||
    { cat "$dir/server.log" >&2; echo "FAIL: PostgreSQL did not start" >&2; exit 1; }
  echo "export KMS_TEST_PG_URL='postgres://kms@127.0.0.1:$port/postgres'"
  echo "export KMS_TEST_PG_PASSWORD='$password'"
  echo "export KMS_TEST_PG_DIR='$dir'"
  echo "export KMS_TEST_PG_CA_FILE='$dir/tls/ca.crt'"
  ;;
restart)
  bin=$(find_bin)
  run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >&2
  ;;
install-cert)
  cert=${3:?usage: $0 install-cert DIR CERT KEY}
  key=${4:?usage: $0 install-cert DIR CERT KEY}
  bin=$(find_bin)
  run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  # Written next to the files and renamed over them: the server never reads half a file.
  install -m 644 "$cert" "$dir/tls/server.crt.new"
  install -m 600 "$key" "$dir/tls/server.key.new"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/tls/server.crt.new" "$dir/tls/server.key.new"; fi
  mv -f "$dir/tls/server.crt.new" "$dir/tls/server.crt"
  mv -f "$dir/tls/server.key.new" "$dir/tls/server.key"
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" reload >&2
  ;;
stop)
  bin=$(find_bin) || exit 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start [DIR] [hostssl-only] | stop [DIR] | restart [DIR] | install-cert DIR CERT KEY" >&2
  exit 64
  ;;
esac
