#!/usr/bin/env bash
# Remove network namespaces (and their processes) left by crashed netlab runs (root).
# Only namespaces whose creating process is gone are touched; live runs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'from tests.netlab import cleanup_stale; print("\n".join(cleanup_stale()) or "nothing stale")'
