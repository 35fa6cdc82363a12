#!/usr/bin/env bash
# Build the release artifacts of the sp2p CLI for this machine's OS/arch from the
# PyInstaller binary: the raw binary + .sha256 (the /dl layout of the bootstrap scripts),
# an upstream-compatible tarball, a .deb and an .rpm (Linux), a source tarball, and
# SHA256SUMS. With --release-base, also render the Homebrew formula, the Scoop manifest
# and the APKBUILD from the checksums of all platforms.
#
# Usage: bash scripts/build_packages.sh [--binary PATH] [--out DIR]
#                                       [--release-base URL] [--sums FILE]...
#        bash scripts/build_packages.sh --manifests-only --out DIR --release-base URL [--sums FILE]...
#   --binary PATH        prebuilt binary (default: build one with scripts/build_binary.sh)
#   --out DIR            output directory (default: dist/packages); emptied first
#   --manifests-only     only (re)render DIR/manifests from DIR/SHA256SUMS and --sums
#   --release-base URL   versioned URL where the release files will be published, e.g.
#                        https://example.org/sp2p/releases/v1.2.3 (env SP2P_RELEASE_BASE)
#   --sums FILE          SHA256SUMS of another platform's build (macOS, Windows, arm64),
#                        needed to render manifests that list those binaries; repeatable
# Environment: SP2P_HOMEPAGE (package homepage, default: the release base),
#   SP2P_MAINTAINER (default "sp2p maintainers <maintainers@sp2p.invalid>"),
#   SOURCE_DATE_EPOCH (default: the last commit's time) for reproducible archives.
#
# Release binaries should be built on the oldest glibc they must run on: the .deb
# depends on libc6 >= the build machine's glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

binary=""
out="$root/dist/packages"
release_base="${SP2P_RELEASE_BASE:-}"
sums=()
manifests_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --release-base) release_base=$2; shift 2 ;;
    --sums) sums+=("$2"); shift 2 ;;
    --manifests-only) manifests_only=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build_packages.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

version=$(python3 -c 'import sp2p; print(sp2p.__version__)')
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
maintainer="${SP2P_MAINTAINER:-sp2p maintainers <maintainers@sp2p.invalid>}"
release_base=${release_base%/}
homepage="${SP2P_HOMEPAGE:-$release_base}"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  MINGW*|MSYS*|CYGWIN*) os=windows ;;
  *) echo "build_packages.sh: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=amd64; deb_arch=amd64; rpm_arch=x86_64 ;;
  aarch64|arm64) arch=arm64; deb_arch=arm64; rpm_arch=aarch64 ;;
  *) echo "build_packages.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
exe=""
[ "$os" = windows ] && exe=".exe"

if [ "$manifests_only" -eq 1 ]; then
  if [ -z "$release_base" ] || [ ! -f "$out/SHA256SUMS" ]; then
    echo "build_packages.sh: --manifests-only needs --release-base and $out/SHA256SUMS" >&2
    exit 2
  fi
elif [ -z "$binary" ]; then
  binary=$(bash scripts/build_binary.sh --no-measure | tail -n 1)
fi
if [ "$manifests_only" -eq 0 ] && [ ! -x "$binary" ]; then
  echo "build_packages.sh: not an executable: $binary" >&2
  exit 1
fi

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d ' ' -f 1
  else shasum -a 256 "$1" | cut -d ' ' -f 1; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_artifacts() {
  rm -rf "$out"
  mkdir -p "$out"

  # 1. The raw binary and its checksum: what /dl serves and the bootstrap scripts verify.
  asset="sp2p-$os-$arch$exe"
  cp "$binary" "$out/$asset"
  chmod 0755 "$out/$asset"
  printf '%s  %s\n' "$(sha256 "$out/$asset")" "$asset" >"$out/$asset.sha256"

  # 2. Upstream-compatible archive (/dl/{os}/{arch}): one top-level `sp2p` entry.
  mkdir -p "$work/archive"
  cp "$binary" "$work/archive/sp2p$exe"
  chmod 0755 "$work/archive/sp2p$exe"
  if [ "$os" = windows ]; then
    (cd "$work/archive" && python3 -m zipfile -c "$out/sp2p_${os}_${arch}.zip" "sp2p$exe")
  else
    tar -C "$work/archive" --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
      -cf - "sp2p$exe" | gzip -9n >"$out/sp2p_${os}_${arch}.tar.gz"
  fi

  # The man page carries the version being packaged.
  sed "s/^\.TH SP2P 1 .*/.TH SP2P 1 \"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d 2>/dev/null ||
    date -u -r "$SOURCE_DATE_EPOCH" +%Y-%m-%d)\" \"sp2p $version\" \"User Commands\"/" \
    packaging/man/sp2p.1 >"$work/sp2p.1"

  if [ "$os" = linux ]; then
    # 3. Debian package.
    deb="$work/deb"
    install -D -m 0755 "$binary" "$deb/usr/bin/sp2p"
    install -d "$deb/usr/share/man/man1" "$deb/usr/share/doc/sp2p" "$deb/DEBIAN"
    gzip -9n <"$work/sp2p.1" >"$deb/usr/share/man/man1/sp2p.1.gz"
    install -m 0644 packaging/debian/copyright "$deb/usr/share/doc/sp2p/copyright"
    glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
    size=$(du -sk --exclude=DEBIAN "$deb" | cut -f 1)
    sed -e "s/@@VERSION@@/$version/" -e "s/@@DEB_ARCH@@/$deb_arch/" \
      -e "s/@@INSTALLED_SIZE@@/$size/" -e "s/@@GLIBC@@/$glibc/" \
      -e "s|@@MAINTAINER@@|$maintainer|" -e "s|@@HOMEPAGE@@|$homepage|" \
      packaging/debian/control.in | grep -v '^Homepage: *$' >"$deb/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/sp2p_${version}_${deb_arch}.deb" >/dev/null

    # 4. RPM package.
    if command -v rpmbuild >/dev/null 2>&1; then
      rpm_args=(--define "_topdir $work/rpm" --define "sp2p_version $version"
        --define "sp2p_binary $binary" --define "sp2p_man $work/sp2p.1"
        --define "sp2p_license $root/packaging/debian/copyright"
        --define "_buildhost reproducible" --define "use_source_date_epoch_as_buildtime 1")
      [ -n "$homepage" ] && rpm_args+=(--define "sp2p_homepage $homepage")
      rpmbuild -bb --quiet --target "$rpm_arch" "${rpm_args[@]}" packaging/rpm/sp2p.spec >&2
      cp "$work/rpm/RPMS/$rpm_arch/"*.rpm "$out/"
    else
      echo "build_packages.sh: rpmbuild not found (Debian: apt install rpm); no .rpm" >&2
    fi
  fi

  # 5. Source tarball (the APKBUILD builds from it).
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git archive --format=tar --prefix="sp2p-$version/" HEAD | gzip -9n >"$out/sp2p-$version.tar.gz"
  fi

  # 6. Checksums of everything above.
  (cd "$out" && for f in *; do
    case "$f" in *.sha256|SHA256SUMS) continue ;; esac
    printf '%s  %s\n' "$(sha256 "$f")" "$f"
  done) >"$work/SHA256SUMS"
  mv "$work/SHA256SUMS" "$out/SHA256SUMS"
}

[ "$manifests_only" -eq 1 ] || build_artifacts

# 7. Package-manager manifests, rendered only when every checksum they need is known.
if [ -n "$release_base" ]; then
  mkdir -p "$out/manifests"
  python3 - "$out" "$version" "$release_base" "$homepage" "$maintainer" \
    "$out/SHA256SUMS" "${sums[@]}" <<'PY'
import hashlib, pathlib, re, sys
out, version, base, homepage, maintainer, *sum_files = sys.argv[1:]
out = pathlib.Path(out)
sha256 = {}
for f in sum_files:
    for line in pathlib.Path(f).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sha256[name.lstrip("*./")] = digest.lower()
def sha512(name):
    path = out / name
    return hashlib.sha512(path.read_bytes()).hexdigest() if path.is_file() else None
templates = {"homebrew/sp2p.rb.in": "sp2p.rb", "scoop/sp2p.json.in": "sp2p.json",
             "alpine/APKBUILD.in": "APKBUILD"}
for template, target in templates.items():
    text = pathlib.Path("packaging", template).read_text()
    for key, value in {"VERSION": version, "RELEASE_BASE": base, "HOMEPAGE": homepage,
                       "MAINTAINER": maintainer}.items():
        text = text.replace(f"@@{key}@@", value)
    missing = []
    def lookup(match):
        kind, name = match.group(1), match.group(2)
        value = sha256.get(name) if kind == "SHA256" else sha512(name)
        if value is None:
            missing.append(name)
            return match.group(0)
        return value
    text = re.sub(r"@@(SHA256|SHA512):([^@]+)@@", lookup, text)
    if missing:
        print(f"skipped {target}: no checksum for {', '.join(missing)} (pass --sums)",
              file=sys.stderr)
        continue
    (out / "manifests" / target).write_text(text)
    print(f"rendered {target}", file=sys.stderr)
PY
fi

echo "Artifacts in $out:" >&2
ls -l "$out" >&2
