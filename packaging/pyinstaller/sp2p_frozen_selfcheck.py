"""Self-check of a frozen sp2p binary: run with `SP2P_FROZEN_SELFCHECK=1 sp2p`.

PyInstaller only bundles what its import analysis finds, and the CLI imports heavy
pieces (aiortc, zstandard, miniupnpc) lazily. This check imports every sp2p module and
exercises each third-party library the CLI relies on, ending with a real aiortc data
channel echo between two peer connections over 127.0.0.1 (no traffic leaves the host).
Prints one line per check and `selfcheck: ok` on success; exit status 0 or 1.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
from collections.abc import Callable
from typing import Any

ECHO_TIMEOUT = 20.0


def _frozen_sp2p_modules() -> list[str]:
    # This check runs from a custom runtime hook, i.e. before PyInstaller's own pkgutil
    # hook, so walk the archive's table of contents the way that hook does.
    import pyimod02_importers  # type: ignore[import-not-found]

    names: list[str] = []

    def walk(node: dict[str, object], prefix: str) -> None:
        for name, child in node.items():
            names.append(prefix + name)
            if isinstance(child, dict):
                walk(child, prefix + name + ".")

    tree = pyimod02_importers.get_pyz_toc_tree().get("sp2p", {})
    walk(tree, "sp2p.")
    return names


def check_sp2p_modules() -> str:
    import sp2p

    if getattr(sys, "frozen", False):
        names = _frozen_sp2p_modules()
    else:
        names = [m.name for m in pkgutil.walk_packages(sp2p.__path__, "sp2p.")]
    if "sp2p.cli" not in names:
        raise RuntimeError(f"sp2p.cli missing from the bundle (found {names})")
    for name in names:
        importlib.import_module(name)
    return f"{len(names) + 1} modules"


def check_crypto() -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    shared = a.exchange(b.public_key())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"s", info=b"i").derive(shared)
    nonce = bytes(12)
    sealed = AESGCM(key).encrypt(nonce, b"payload", None)
    if AESGCM(key).decrypt(nonce, sealed, None) != b"payload":
        raise RuntimeError("AES-GCM round trip failed")
    return "x25519, hkdf, aes-gcm"


def check_zstd() -> str:
    import zstandard

    data = b"sp2p " * 1000
    packed = zstandard.ZstdCompressor(level=3).compress(data)
    if zstandard.ZstdDecompressor().decompress(packed) != data:
        raise RuntimeError("zstd round trip failed")
    return f"zstandard {zstandard.__version__}"


def check_misc_libs() -> str:
    import ssl

    import miniupnpc
    import websocket
    import yaml

    if yaml.safe_load("a: 1") != {"a": 1}:
        raise RuntimeError("yaml parse failed")
    ssl.create_default_context()
    miniupnpc.UPnP()  # constructing does no network I/O
    from sp2p.term.qr import qr_lines  # segno, imported only when a QR code is drawn

    if len(qr_lines("https://sp2p.example/r#k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf", color=False)) < 10:
        raise RuntimeError("QR code rendering failed")
    return f"yaml, ssl ({ssl.OPENSSL_VERSION}), websocket-client {websocket.__version__}, miniupnpc, segno"


def check_av_stub() -> str:
    import av

    frozen = getattr(sys, "frozen", False)
    stub = str(getattr(av, "__version__", "")).endswith("sp2p-stub")
    if frozen and not stub:
        raise RuntimeError("real PyAV found in the binary; it should be excluded")
    return "stub" if stub else f"real PyAV {av.__version__} (not frozen)"


async def _echo() -> str:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection

    # aioice skips loopback when gathering host candidates; keep the check on 127.0.0.1.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    config = RTCConfiguration(iceServers=[])  # the default would contact a public STUN server
    offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    try:

        @answerer.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            @channel.on("message")  # type: ignore[untyped-decorator]
            def on_message(message: str) -> None:
                channel.send("echo:" + message)

        channel = offerer.createDataChannel("selfcheck")

        @channel.on("open")
        def on_open() -> None:
            channel.send("ping")

        @channel.on("message")
        def on_reply(message: str) -> None:
            if not reply.done():
                reply.set_result(message)

        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        got = await asyncio.wait_for(reply, ECHO_TIMEOUT)
    finally:
        await offerer.close()
        await answerer.close()
    if got != "echo:ping":
        raise RuntimeError(f"unexpected echo {got!r}")
    return "data channel echo over 127.0.0.1"


def check_webrtc() -> str:
    return asyncio.run(_echo())


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("sp2p modules", check_sp2p_modules),
    ("crypto", check_crypto),
    ("zstd", check_zstd),
    ("libraries", check_misc_libs),
    ("av", check_av_stub),
    ("webrtc", check_webrtc),
]


def main() -> int:
    failed = 0
    for name, check in CHECKS:
        try:
            detail = check()
        except Exception as exc:  # report every failure, not just the first
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"ok   {name}: {detail}", flush=True)
    print("selfcheck: ok" if not failed else f"selfcheck: {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
