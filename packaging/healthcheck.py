"""Container health check: GET /health on the server's own listener must answer `ok`.

Follows SP2P_ADDR (the image defaults to :8080; ACME or TLS setups move it, e.g. :443).
Over TLS the certificate is not verified: this only probes the local process.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    addr = os.environ.get("SP2P_ADDR") or ":8080"
    port = addr.rsplit(":", 1)[-1] or "8080"
    tls = bool(os.environ.get("SP2P_TLS_CERT")) or os.environ.get("SP2P_ACME", "") in (
        "1", "t", "T", "true", "TRUE", "True")
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health"
    context = ssl._create_unverified_context() if tls else None  # noqa: S323 - local probe
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:  # noqa: S310
            return 0 if response.read() == b"ok" else 1
    except OSError as exc:
        print(f"health check failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
