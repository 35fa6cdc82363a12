#!/bin/sh
# sp2p bootstrap: downloads the sp2p CLI, checks its SHA-256, runs `sp2p send` or
# `sp2p receive`, cleans up.
#
#   curl -f @@SP2P_BASE_URL@@ | sh -s FILE...
#   curl -f @@SP2P_BASE_URL@@/r | sh -s CODE
#   curl -f @@SP2P_BASE_URL@@/r | SP2P_CODE=CODE sh     (keeps the code out of argv)
#
# One template for both: sp2p-server serves it at `/` (send) and `/r` (receive) to
# curl-like clients, with @@SP2P_COMMAND@@ replaced by the mode and @@SP2P_BASE_URL@@ by its
# base URL. Download layout it expects (os: linux|darwin, arch: amd64|arm64):
#   BASE/dl/sp2p-<os>-<arch>          the single-file CLI binary (a redirect is fine)
#   BASE/dl/sp2p-<os>-<arch>.sha256   "<64 hex digits>  sp2p-<os>-<arch>" (sha256sum format)
# The binary runs only if its hash matches. Downloads are https-only (plain http is
# accepted for a loopback base URL, for development). Relay (TURN) consent stays with
# the user: this script never adds -allow-relay.
# Everything happens inside main(), called on the last line, so a truncated download of
# this script runs nothing.

set -eu

sp2p_command=@@SP2P_COMMAND@@
sp2p_base='@@SP2P_BASE_URL@@'

sp2p_tmp=""

sp2p_die() {
  printf 'sp2p: %s\n' "$*" >&2
  exit 1
}

# The mode's route and arguments, for the usage and Windows hints.
sp2p_resolve_mode() {
  case "$sp2p_command" in
    @@*) # not rendered by a server: allow a local run for development
      sp2p_command=${SP2P_MODE:-} ;;
  esac
  case "$sp2p_command" in
    send) sp2p_route='' sp2p_usage='FILE...' ;;
    receive) sp2p_route=/r sp2p_usage=CODE ;;
    *) sp2p_die "this script must be served by sp2p-server (or set SP2P_MODE=send|receive)" ;;
  esac
}

sp2p_resolve_base() {
  case "$sp2p_base" in
    @@*) # not rendered by a server: allow a local run for development
      sp2p_base=${SP2P_BASE_URL:-}
      [ -n "$sp2p_base" ] || sp2p_die "this script must be served by sp2p-server (or set SP2P_BASE_URL)"
      ;;
  esac
  sp2p_base=${sp2p_base%/}
  case "$sp2p_base" in
    https://*) sp2p_proto='=https' ;;
    http://127.0.0.1 | http://127.0.0.1[:/]* | http://localhost | http://localhost[:/]* | http://\[::1\]*)
      sp2p_proto='=http,https' ;;
    *) sp2p_die "refusing to download over plain http from $sp2p_base (https required)" ;;
  esac
}

# Platform detection and downloads as install.sh does them: each script arrives alone through
# `curl | sh`, so neither can source the other (tests/dist checks both).
sp2p_detect_platform() {
  sp2p_os=$(uname -s)
  case "$sp2p_os" in
    Linux) sp2p_os=linux ;;
    Darwin) sp2p_os=darwin ;;
    MINGW* | MSYS* | CYGWIN* | Windows*)
      sp2p_die "on Windows use PowerShell: & ([scriptblock]::Create((irm $sp2p_base/ps$sp2p_route))) '${sp2p_usage%...}'" ;;
    *) sp2p_die "unsupported OS: $sp2p_os" ;;
  esac
  sp2p_arch=$(uname -m)
  case "$sp2p_arch" in
    x86_64 | amd64) sp2p_arch=amd64 ;;
    aarch64 | arm64) sp2p_arch=arm64 ;;
    *) sp2p_die "unsupported architecture: $sp2p_arch" ;;
  esac
  # An x86_64 shell under Rosetta on Apple silicon: the native binary is the right one.
  if [ "$sp2p_os" = darwin ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
    sp2p_arch=arm64
  fi
  if [ "$sp2p_os" = linux ] && ls /lib/ld-musl-* >/dev/null 2>&1; then
    sp2p_die "musl-based Linux (e.g. Alpine) is not supported by the prebuilt binary; install the sp2p package or 'pip install sp2p'"
  fi
}

# sp2p_fetch URL FILE: download URL to FILE; https-only unless the base is loopback.
sp2p_fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --proto "$sp2p_proto" --proto-redir "$sp2p_proto" --tlsv1.2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    if [ "$sp2p_proto" = '=https' ]; then
      wget -q --https-only -O "$2" "$1"
    else
      wget -q -O "$2" "$1"
    fi
  else
    sp2p_die "curl or wget is required"
  fi
}

# sp2p_sha256 FILE: print the lower-case hex SHA-256 of FILE.
sp2p_sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  else
    sp2p_die "sha256sum or shasum is required to verify the download"
  fi
}

sp2p_download() {
  sp2p_asset="sp2p-$sp2p_os-$sp2p_arch"
  sp2p_tmp=$(mktemp -d "${TMPDIR:-/tmp}/sp2p.XXXXXXXX") || sp2p_die "cannot create a temporary directory"
  printf 'Downloading sp2p (%s)...\n' "$sp2p_asset" >&2
  sp2p_fetch "$sp2p_base/dl/$sp2p_asset.sha256" "$sp2p_tmp/sp2p.sha256" ||
    sp2p_die "cannot download the checksum $sp2p_base/dl/$sp2p_asset.sha256"
  sp2p_expected=$(sed -n '1s/^\([0-9a-fA-F]\{64\}\)\([[:space:]].*\)\{0,1\}$/\1/p' "$sp2p_tmp/sp2p.sha256" | tr 'A-F' 'a-f')
  [ -n "$sp2p_expected" ] || sp2p_die "malformed checksum from $sp2p_base/dl/$sp2p_asset.sha256"
  sp2p_fetch "$sp2p_base/dl/$sp2p_asset" "$sp2p_tmp/sp2p.download" ||
    sp2p_die "cannot download $sp2p_base/dl/$sp2p_asset"
  sp2p_actual=$(sp2p_sha256 "$sp2p_tmp/sp2p.download")
  if [ "$sp2p_actual" != "$sp2p_expected" ]; then
    sp2p_die "checksum mismatch for $sp2p_asset (expected $sp2p_expected, got $sp2p_actual); not running it"
  fi
  mv "$sp2p_tmp/sp2p.download" "$sp2p_tmp/sp2p"
  chmod 700 "$sp2p_tmp/sp2p"
}

# No code on the command line: take it from SP2P_CODE or ask on the terminal. The code
# reaches the CLI through the environment, never through argv (visible to other users).
sp2p_ask_code() {
  if [ -z "${SP2P_CODE:-}" ]; then
    if ! { true </dev/tty; } 2>/dev/null; then
      sp2p_die "usage: curl -f BASE_URL/r | sh -s CODE"
    fi
    printf 'Transfer code: ' >/dev/tty
    IFS= read -r SP2P_CODE </dev/tty || sp2p_die "no transfer code given"
    [ -n "$SP2P_CODE" ] || sp2p_die "no transfer code given"
  fi
  export SP2P_CODE
}

main() {
  # Remove the temporary directory on every way out; a signal exits, which runs EXIT.
  trap '[ -z "$sp2p_tmp" ] || rm -rf "$sp2p_tmp"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  sp2p_resolve_mode
  if [ $# -eq 0 ]; then
    [ "$sp2p_command" = receive ] || sp2p_die "usage: curl -f BASE_URL$sp2p_route | sh -s $sp2p_usage"
    sp2p_ask_code
  fi
  sp2p_resolve_base
  sp2p_detect_platform
  sp2p_download
  sp2p_status=0
  # TMPDIR: the binary unpacks itself there, so our trap also removes what it unpacked.
  TMPDIR=$sp2p_tmp SP2P_SERVER=$sp2p_base SP2P_URL=$sp2p_base \
    "$sp2p_tmp/sp2p" "$sp2p_command" "$@" || sp2p_status=$?
  if [ "$sp2p_status" -eq 126 ]; then
    printf 'sp2p: cannot execute from %s; set TMPDIR to a directory that allows execution\n' "$sp2p_tmp" >&2
  fi
  exit "$sp2p_status"
}

main "$@"
