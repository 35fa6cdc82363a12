"""PyInstaller runtime hook: point OpenSSL at the system's CA bundle.

The binary carries the OpenSSL of the build machine, whose compiled-in certificate
paths may not exist on the user's system (Debian builds look in /usr/lib/ssl, Fedora
keeps its bundle in /etc/pki, Alpine and macOS in /etc/ssl/cert.pem). Without this,
`wss://` to a real server would fail certificate verification on those systems.
Only file-existence checks here: importing ssl would slow every start.
"""

from __future__ import annotations

import os
import sys

_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Alpine (ca-certificates)
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # newer RHEL
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSD
)


def _pick_bundle() -> None:
    if sys.platform == "win32" or os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return  # Windows uses the system store; an explicit user choice wins
    for path in _CANDIDATES:
        if os.path.isfile(path):
            os.environ["SSL_CERT_FILE"] = path
            return


_pick_bundle()
