#!/usr/bin/env bash
# Builds the Debian packages kms-server (kms, kms-cluster-key) and xks-proxy with dpkg-deb:
#   packaging/deb.sh [--release|--debug] [--out DIR]      (default: --release, target/deb)
# Two packages because the two servers are separate deployments (the proxy sits next to an
# HSM for AWS KMS; the KMS serves clients) with their own users, configuration and units, and
# neither needs the other. Inputs are the files of packaging/<package>/ (control template,
# configuration, unit, maintainer scripts, README.Debian, lintian-overrides) and the manual
# pages of packaging/man/; the layout is in docs/operations.md, "Installing from the Debian
# package". Prints the paths of the .debs.
set -euo pipefail

profile=release
out=""
while [ $# -gt 0 ]; do
  case $1 in
    --release) profile=release ;;
    --debug) profile=debug ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h|--help) sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deb.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for tool in cargo dpkg-deb dpkg strip gzip; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done
out=${out:-$root/target/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --workspace: the same feature set as `cargo build --workspace` elsewhere (CI, tests/run.sh),
# so the binaries there are reused instead of rebuilt with -p's narrower features; --bin: only
# the packaged binaries (not loadgen).
build=(cargo build --workspace --bin kms --bin kms-cluster-key --bin xks-proxy --locked)
[ "$profile" = release ] && build+=(--release)
# A --debug package is for tests (tests/cli/package.sh): built with the test build's feature
# set (--tests: dev-dependencies' features unified), it reuses the binaries the test suite made.
[ "$profile" = debug ] && build+=(--tests)
"${build[@]}"
bins=${CARGO_TARGET_DIR:-$root/target}/$profile
# xz for release; gzip -1 for --debug (CI: large unoptimized binaries, and speed matters).
compress=(-Zxz)
[ "$profile" = debug ] && compress=(-Zgzip -z1)

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "FAIL: no version in [workspace.package] of Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-kms maintainers <kms-maintainers@example.org>}
# Reproducible file times and changelog date: the last commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# dpkg-shlibdeps wants to run in a source tree: debian/control (empty is enough), and the
# binaries under debian/<package>/.
mkdir -p "$stage/debian"
: >"$stage/debian/control"

# shlib_depends PKGDIR: the Depends of the ELF files under PKGDIR/usr/bin, from
# dpkg-shlibdeps when installed, else from ldd and the packages owning the libraries.
shlib_depends() {
  local dir=$1 f lib pkg
  if command -v dpkg-shlibdeps >/dev/null; then
    (cd "$stage" && dpkg-shlibdeps -O "${dir#"$stage"/}"/usr/bin/*) | sed -n 's/^shlibs:Depends=//p'
    return
  fi
  for f in "$dir"/usr/bin/*; do
    ldd "$f" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null) || {
      echo "FAIL: no package owns $lib" >&2; exit 1; }
    echo "${pkg%%:*}"
  done | sort -u | paste -sd, | sed 's/,/, /g'
}

# package NAME CONFDIR BIN...: stages packaging/NAME/ and the binaries, builds NAME_*.deb.
package() {
  local name=$1 confdir=$2; shift 2
  local src=$root/packaging/$name dir=$stage/debian/$name b f
  local doc=$dir/usr/share/doc/$name
  install -d -m 0755 "$dir/DEBIAN" "$dir/usr/bin" "$dir/etc/$confdir" "$dir/lib/systemd/system" "$doc"
  for b in "$@"; do
    [ -x "$bins/$b" ] || { echo "FAIL: $bins/$b was not built" >&2; exit 1; }
    # Stripped as Debian strips (lintian: unstripped-binary-or-object).
    install -m 0755 "$bins/$b" "$dir/usr/bin/$b"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$dir/usr/bin/$b"
  done
  install -m 0644 "$src/$confdir.toml" "$dir/etc/$confdir/$confdir.toml"
  install -m 0600 "$src/$confdir.env" "$dir/etc/$confdir/$confdir.env"
  for f in "$src"/*.service; do
    install -m 0644 "$f" "$dir/lib/systemd/system/"
  done
  install -m 0644 "$src/README.Debian" "$doc/README.Debian"
  # Manual pages (packaging/man/): one per binary (section 8, or 1 for a tool that is not
  # admin-only) and one for the configuration file (section 5), gzipped as dh_compress does
  # (-9n: no name or time stamp in the header, so the package is reproducible).
  local page pages=("$root/packaging/man/$confdir.toml.5")
  for b in "$@"; do
    page=""
    for f in "$root/packaging/man/$b".8 "$root/packaging/man/$b".1; do
      [ -f "$f" ] && page=$f
    done
    [ -n "$page" ] || { echo "FAIL: packaging/man/ has no page $b.8 or $b.1 for /usr/bin/$b" >&2; exit 1; }
    pages+=("$page")
  done
  for page in "${pages[@]}"; do
    f=$(basename "$page")
    install -d -m 0755 "$dir/usr/share/man/man${f##*.}"
    gzip -9n <"$page" >"$dir/usr/share/man/man${f##*.}/$f.gz"
    chmod 0644 "$dir/usr/share/man/man${f##*.}/$f.gz"
  done
  install -m 0644 "$root/packaging/copyright" "$doc/copyright"
  {
    printf '%s (%s) unstable; urgency=medium\n\n' "$name" "$version"
    printf '  * Built from the kms workspace by packaging/deb.sh.\n\n'
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n >"$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
  # Deliberate departures from lintian's defaults, each with its reason in the file.
  install -d -m 0755 "$dir/usr/share/lintian/overrides"
  install -m 0644 "$src/lintian-overrides" "$dir/usr/share/lintian/overrides/$name"
  for f in postinst prerm postrm; do
    install -m 0755 "$src/$f" "$dir/DEBIAN/$f"
  done
  (cd "$dir" && find etc -type f | sort | sed 's|^|/|') >"$dir/DEBIAN/conffiles"
  chmod 0644 "$dir/DEBIAN/conffiles"
  # Checksums for dpkg --verify (conffiles are left out, as dh_md5sums does: dpkg keeps theirs).
  (cd "$dir" && find usr lib -type f | LC_ALL=C sort | xargs md5sum) >"$dir/DEBIAN/md5sums"
  chmod 0644 "$dir/DEBIAN/md5sums"
  local shlibs size
  shlibs=$(shlib_depends "$dir")
  [ -n "$shlibs" ] || { echo "FAIL: no shared-library dependencies found for $name" >&2; exit 1; }
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINTAINER@/$maintainer/" \
    -e "s/@INSTALLED_SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" "$src/control" >"$dir/DEBIAN/control"
  chmod 0644 "$dir/DEBIAN/control"
  # Directories 0755 whatever the umask; files keep the modes set above.
  find "$dir" -type d -exec chmod 0755 {} +
  dpkg-deb --root-owner-group "${compress[@]}" --build "$dir" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out/${name}_${version}_${arch}.deb"
}

package kms-server kms kms kms-cluster-key
package xks-proxy xks-proxy xks-proxy
