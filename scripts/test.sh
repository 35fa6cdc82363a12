#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it.
# Usage: bash scripts/test.sh [pytest args...]   (as root, or with sudo available for apt-get)
#        SP2P_TEST_WORKERS=N: N parallel pytest-xdist workers (default 3; -n 0 in the args: serial)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

mapfile -t pkgs < <(grep -v '^\s*#' .ci/apt-packages | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q -e '.[dev]'
if [ -x scripts/setup_test_extras.sh ]; then bash scripts/setup_test_extras.sh; fi

python3 -m ruff check sp2p server tests scripts
python3 -m mypy
set +e
# -n: pytest-xdist workers. Tests mostly wait (sockets, browsers, subprocesses), so more workers
# than cores pay; `bash scripts/test.sh -n 0 ...` runs serially (a later -n wins).
# --dist loadgroup: tests marked xdist_group (tests sharing one podman image) stay on one worker.
# --durations=30: the CI log names the slowest tests (tests/support/durations.py adds the time per directory)
python3 -b -m pytest -n "${SP2P_TEST_WORKERS:-3}" --dist loadgroup --durations=30 "$@"
rc=$?
set -e
# pytest's 5 means "no tests ran": that is a failure for us.
if [ "$rc" -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi
exit "$rc"
