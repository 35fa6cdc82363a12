#!/usr/bin/env bash
# Build the single-file `sp2p` CLI binary with PyInstaller, self-check it, and print its
# size and cold-start time (`sp2p --version`).
#
# Usage: bash scripts/build_binary.sh [--dist DIR] [--work DIR] [--no-measure]
#   --dist DIR     where the binary goes (default: dist/)
#   --work DIR     PyInstaller's scratch directory (default: build/pyinstaller/)
#   --no-measure   skip the cold-start measurement
# Prints the binary's path as the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dist="$root/dist"
work="$root/build/pyinstaller"
measure=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) dist=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --no-measure) measure=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build_binary.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

# PyInstaller is a build tool, not a runtime dependency: install it when it is missing.
if ! python3 -c 'import PyInstaller' >/dev/null 2>&1; then
  echo "build_binary.sh: installing PyInstaller" >&2
  python3 -m pip install --quiet 'pyinstaller>=6.6' >&2
fi

python3 -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$work" "$root/pyinstaller.spec" >&2

binary="$dist/sp2p"
[ -f "$binary.exe" ] && binary="$binary.exe"
[ -x "$binary" ] || { echo "build_binary.sh: no binary at $binary" >&2; exit 1; }

# The frozen self-check: every sp2p module, the crypto and compression libraries and a
# real aiortc data-channel echo over 127.0.0.1 inside the binary.
SP2P_FROZEN_SELFCHECK=1 "$binary" >&2

size=$(wc -c <"$binary")
echo "size: $size bytes ($((size / 1024 / 1024)) MiB)" >&2
if [ "$measure" -eq 1 ]; then
  if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --style basic --warmup 2 --runs 10 "$binary --version" >&2
  else
    python3 - "$binary" >&2 <<'PY'
import statistics, subprocess, sys, time
runs = []
for _ in range(10):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "--version"], check=True, stdout=subprocess.DEVNULL)
    runs.append(time.perf_counter() - t0)
print(f"cold start (--version): mean {statistics.mean(runs)*1000:.0f} ms, "
      f"min {min(runs)*1000:.0f} ms, max {max(runs)*1000:.0f} ms over {len(runs)} runs")
PY
  fi
fi
echo "$binary"
