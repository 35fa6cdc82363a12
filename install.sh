#!/bin/sh
# Install sp2p for the current user (no root needed).
#
#   sh install.sh --base https://sp2p.example        prebuilt CLI binary from a server/mirror
#   sh install.sh --from-source [--server]            from this checkout, with pip, in a venv
#   sh install.sh --uninstall                         remove what this script installed
#
# Options:
#   --base URL        where to download the binary: an sp2p-server (or any mirror) that
#                     serves BASE/dl/sp2p-<os>-<arch> and BASE/dl/sp2p-<os>-<arch>.sha256
#                     (env SP2P_INSTALL_BASE). The SHA-256 is always checked; https only,
#                     except for a loopback URL.
#   --from-source     pip-install the checkout this script lives in, into a private venv
#                     (~/.local/share/sp2p/venv); needs Python >= 3.11 with venv.
#   --server          also install sp2p-server (implies --from-source).
#   --system-site-packages   let the venv reuse already installed Python packages.
#   --bin-dir DIR     where the commands go (default ~/.local/bin).
#   --uninstall       remove the commands, man pages and venv installed by this script.
set -eu

main() {
  bin_dir="${HOME}/.local/bin"
  data_dir="${XDG_DATA_HOME:-$HOME/.local/share}"
  base="${SP2P_INSTALL_BASE:-}"
  mode=""
  server=0
  venv_flags=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --base) [ $# -ge 2 ] || die "--base needs a URL"; base=$2; mode=${mode:-binary}; shift 2 ;;
      --base=*) base=${1#--base=}; mode=${mode:-binary}; shift ;;
      --from-source) mode=source; shift ;;
      --server) server=1; mode=source; shift ;;
      --system-site-packages) venv_flags="--system-site-packages"; shift ;;
      --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
      --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
      --uninstall) mode=uninstall; shift ;;
      -h | --help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" 2>/dev/null || true; exit 0 ;;
      *) die "unknown option: $1 (see --help)" ;;
    esac
  done
  [ -n "$mode" ] || { [ -n "$base" ] && mode=binary; } ||
    die "say where from: --base URL (a server or mirror) or --from-source (see --help)"
  venv="$data_dir/sp2p/venv"
  man_dir="$data_dir/man/man1"

  case "$mode" in
    binary) install_binary ;;
    source) install_source ;;
    uninstall) uninstall ;;
  esac
}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

say() {
  printf '%s\n' "$*" >&2
}

# ---- prebuilt binary ------------------------------------------------------------------

install_binary() {
  base=${base%/}
  case "$base" in
    https://*) proto='=https' ;;
    http://127.0.0.1 | http://127.0.0.1[:/]* | http://localhost | http://localhost[:/]* | http://\[::1\]*)
      proto='=http,https' ;;
    *) die "refusing to download over plain http from $base (https required)" ;;
  esac
  detect_platform
  asset="sp2p-$os-$arch"
  mkdir -p "$bin_dir" || die "cannot create $bin_dir"
  # Download next to the target so the final rename is atomic (same filesystem).
  tmp=$(mktemp -d "$bin_dir/.sp2p-install.XXXXXXXX") || die "cannot write to $bin_dir"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  say "Downloading $asset from $base ..."
  fetch "$base/dl/$asset.sha256" "$tmp/sp2p.sha256" || die "cannot download $base/dl/$asset.sha256"
  expected=$(sed -n '1s/^\([0-9a-fA-F]\{64\}\)\([[:space:]].*\)\{0,1\}$/\1/p' "$tmp/sp2p.sha256" | tr 'A-F' 'a-f')
  [ -n "$expected" ] || die "malformed checksum from $base/dl/$asset.sha256"
  fetch "$base/dl/$asset" "$tmp/sp2p" || die "cannot download $base/dl/$asset"
  actual=$(sha256 "$tmp/sp2p")
  [ "$actual" = "$expected" ] ||
    die "checksum mismatch for $asset (expected $expected, got $actual); nothing installed"
  chmod 755 "$tmp/sp2p"
  version=$("$tmp/sp2p" --version 2>/dev/null) || die "the downloaded binary does not run on this system"
  mv -f "$tmp/sp2p" "$bin_dir/sp2p"
  say "Installed $version to $bin_dir/sp2p"
  path_hint
}

detect_platform() {
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "unsupported OS $(uname -s); on Windows use the Scoop manifest or the PowerShell bootstrap" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported architecture $(uname -m); try --from-source" ;;
  esac
  if [ "$os" = darwin ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
    arch=arm64
  fi
  if [ "$os" = linux ] && ls /lib/ld-musl-* >/dev/null 2>&1; then
    die "musl-based Linux (e.g. Alpine): use the apk package or --from-source"
  fi
}

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --proto "$proto" --proto-redir "$proto" --tlsv1.2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    if [ "$proto" = '=https' ]; then wget -q --https-only -O "$2" "$1"; else wget -q -O "$2" "$1"; fi
  else
    die "curl or wget is required"
  fi
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  else
    die "sha256sum or shasum is required to verify the download"
  fi
}

# ---- from source ----------------------------------------------------------------------

install_source() {
  src=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || src=""
  if [ -z "$src" ] || [ ! -f "$src/pyproject.toml" ] || [ ! -d "$src/sp2p" ]; then
    die "--from-source needs a checkout: git clone the sp2p repository and run ./install.sh there"
  fi
  python=""
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python=$candidate
      break
    fi
  done
  [ -n "$python" ] || die "Python 3.11 or newer is required"
  "$python" -c 'import venv, ensurepip' 2>/dev/null ||
    die "Python's venv module is missing (Debian/Ubuntu: apt install python3-venv)"

  target="$src"
  if [ "$server" -eq 1 ]; then target="${src}[server]"; fi
  say "Creating $venv ..."
  mkdir -p "$(dirname "$venv")"
  # shellcheck disable=SC2086  # venv_flags is empty or one flag
  "$python" -m venv $venv_flags "$venv" || die "cannot create the venv $venv"
  say "Installing $target with pip ..."
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$target" ||
    die "pip install failed (see above)"

  mkdir -p "$bin_dir" || die "cannot create $bin_dir"
  link "$venv/bin/sp2p" "$bin_dir/sp2p"
  if [ "$server" -eq 1 ]; then
    link "$venv/bin/sp2p-server" "$bin_dir/sp2p-server"
  fi
  mkdir -p "$man_dir"
  cp "$src/packaging/man/sp2p.1" "$man_dir/sp2p.1"
  [ "$server" -eq 0 ] || cp "$src/packaging/man/sp2p-server.1" "$man_dir/sp2p-server.1"
  say "Installed $("$bin_dir/sp2p" --version) to $bin_dir/sp2p"
  [ "$server" -eq 0 ] || say "Installed sp2p-server to $bin_dir/sp2p-server"
  path_hint
}

link() {
  [ -x "$1" ] || die "pip did not create $1"
  ln -sf "$1" "$2"
}

# ---- uninstall ------------------------------------------------------------------------

uninstall() {
  for f in "$bin_dir/sp2p" "$bin_dir/sp2p-server" "$man_dir/sp2p.1" "$man_dir/sp2p-server.1"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      rm -f "$f"
      say "Removed $f"
    fi
  done
  if [ -d "$venv" ]; then
    rm -rf "$venv"
    rmdir "$(dirname "$venv")" 2>/dev/null || true
    say "Removed $venv"
  fi
}

path_hint() {
  case ":${PATH}:" in
    *":$bin_dir:"*) ;;
    *) say "Note: $bin_dir is not on your PATH; add it, e.g. in ~/.profile: export PATH=\"$bin_dir:\$PATH\"" ;;
  esac
}

main "$@"
