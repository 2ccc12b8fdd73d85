#!/usr/bin/env bash
# Installs whatever the project needs and is missing, then exits. Safe and fast to re-run:
# every step checks first and does nothing when its result is already there.
#   scripts/setup.sh            everything (Debian packages, Bun, JS dependencies, vendored binaries)
#   scripts/setup.sh --no-apt   skip Debian packages (for machines managed otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.env

say() { printf '{"level":"info","msg":"setup: %s"}\n' "$*" >&2; }
die() { printf '{"level":"error","msg":"setup: %s"}\n' "$*" >&2; exit 1; }

# ---- Debian packages -------------------------------------------------------------------------------
# postgresql: the embedded cluster (initdb/postgres); util-linux: setpriv/setsid (children die with us, drop
# root for postgres); prometheus: promtool for the /metrics format test; redis-server: tests; iproute2 and
# iputils-ping: WireGuard interface set-up and the network-namespace tunnel tests; openssl: test certificates.
APT_PACKAGES=(postgresql util-linux prometheus redis-server iproute2 iputils-ping procps ca-certificates openssl)
if [ "${1:-}" != "--no-apt" ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d keeps apt from starting services (we run our own throwaway clusters)
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.secumon && chmod +x /usr/sbin/policy-rc.d.secumon
    [ -e /usr/sbin/policy-rc.d ] || cp /usr/sbin/policy-rc.d.secumon /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cmp -s /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.secumon && rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.secumon
  fi
fi

# ---- Bun, pinned ------------------------------------------------------------------------------------
BUN_DIR=".tools/bun-$BUN_VERSION"
if [ ! -x "$BUN_DIR/node_modules/.bin/bun" ]; then
  command -v npm >/dev/null || die "npm is needed to install Bun; run: apt-get install npm"
  say "installing Bun $BUN_VERSION from the npm registry into $BUN_DIR"
  mkdir -p "$BUN_DIR"
  npm install --silent --no-audit --no-fund --prefix "$BUN_DIR" "bun@$BUN_VERSION" >/dev/null
fi
ln -sfn "bun-$BUN_VERSION/node_modules/.bin/bun" .tools/bun
BUN=.tools/bun

# ---- JS dependencies, from the lockfile ------------------------------------------------------------
if [ ! -f node_modules/.installed ] || [ bun.lock -nt node_modules/.installed ] || [ package.json -nt node_modules/.installed ]; then
  say "installing JS dependencies (bun install --frozen-lockfile)"
  "$BUN" install --frozen-lockfile --silent
  touch node_modules/.installed
fi

# ---- vendored Go binaries, built from pinned modules ----------------------------------------------
build_go() { # name module version package-path
  local name=$1 module=$2 version=$3 pkg=$4 stamp="vendor/bin/.$1.version"
  if [ -x "vendor/bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return; fi
  command -v go >/dev/null || die "Go is needed to build $name; install Go (https://go.dev/doc/install) or apt-get install golang"
  say "building $name $version from its Go module (about a minute)"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags="-s -w" "$pkg@$version" \
    || { rm -rf "$tmp"; die "building $name failed; check network access to the Go module proxy"; }
  mkdir -p vendor/bin
  mv "$tmp"/bin/* "vendor/bin/$name"   # go names it after the module path (minus any /vN suffix)
  echo "$version" > "$stamp"
  rm -rf "$tmp"
}
build_go nats-server "$NATS_SERVER_MODULE" "$NATS_SERVER_VERSION" "$NATS_SERVER_MODULE"
build_go wireguard-go "$WIREGUARD_GO_MODULE" "$WIREGUARD_GO_VERSION" "$WIREGUARD_GO_MODULE"
say "ready"
