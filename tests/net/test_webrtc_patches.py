"""Issue 16 item 7: every patch sp2p/net/webrtc_sctp.py installs on aiortc has a test that fails
when it no longer applies. An upgrade used to drop all the SCTP tuning silently.

For each patched function: the stock code it replaces or wraps is still the code it was
written against (a fingerprint of its source, read from aiortc's file without importing
it), and after apply() the class really carries our function.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

import pytest

from sp2p.net import webrtc_sctp

#: (class, function) -> SHA-256 prefix of the aiortc 1.16 source each patch was written against;
#: when one fails, re-read that function in the new aiortc, adapt the patch, update the
#: fingerprint and PATCHED_VERSIONS (and the aiortc bound in pyproject.toml)
STOCK = {
    ("InboundStream", "add_chunk"): "ca1ccace846182d0",
    ("InboundStream", "pop_messages"): "2235996ca8c81daf",
    ("RTCSctpTransport", "_mark_received"): "95671f597525bae2",
    ("RTCSctpTransport", "_send_sack"): "7a650b9936cd0b9e",
    ("RTCSctpTransport", "_receive_sack_chunk"): "e1fa240780cb603a",
    ("RTCSctpTransport", "_t3_expired"): "6644e88e735ee73b",
    ("RTCSctpTransport", "_update_rto"): "d864ca8e20bf14b7",
    ("RTCSctpTransport", "_transmit"): "dd7ac875b9829966",
    ("RTCSctpTransport", "_get_extensions"): "4781c8d8c3644471",
    ("RTCSctpTransport", "_set_extensions"): "eb3e92256cd98ec5",
    ("RTCSctpTransport", "_send"): "5f98cc26a883867a",
    ("RTCDtlsTransport", "_recv_next"): "0da842a09bc0a8be",
    ("RTCDtlsTransport", "_send_data"): "8ddad8135e064445",
    ("RTCDtlsTransport", "_write_ssl"): "1fffb8c5d1b6d851",
}
#: the aiortc module of each patched class
MODULES = {"RTCDtlsTransport": "aiortc.rtcdtlstransport"}


def _stock_source(cls: str, func: str) -> str:
    spec = importlib.util.find_spec(MODULES.get(cls, "aiortc.rtcsctptransport"))
    assert spec is not None and spec.origin is not None
    text = Path(spec.origin).read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == func:
                    return ast.get_source_segment(text, item) or ""
    return ""


def fingerprint(cls: str, func: str) -> str:
    return hashlib.sha256(_stock_source(cls, func).encode()).hexdigest()[:16]


def test_every_patch_has_a_fingerprint() -> None:
    assert set(STOCK) == set(webrtc_sctp.PATCHED)


def test_installed_aiortc_is_a_patched_version() -> None:
    assert webrtc_sctp.aiortc_version() in webrtc_sctp.PATCHED_VERSIONS


@pytest.mark.parametrize(("cls", "func"), list(STOCK), ids=[f"{c}.{f}" for c, f in STOCK])
def test_patch_still_applies(cls: str, func: str) -> None:
    assert fingerprint(cls, func) == STOCK[(cls, func)], f"aiortc changed {cls}.{func}"
    assert webrtc_sctp.apply() is True
    module = importlib.import_module(MODULES.get(cls, "aiortc.rtcsctptransport"))
    patched = getattr(getattr(module, cls), func)
    assert patched.__module__ == webrtc_sctp.PATCHED[(cls, func)], f"{cls}.{func} is aiortc's own"


def test_advertised_max_message_size() -> None:
    webrtc_sctp.apply()
    from aiortc import rtcsctptransport

    size = rtcsctptransport.RTCSctpTransport.getCapabilities().maxMessageSize
    assert size >= webrtc_sctp.MAX_MESSAGE_SIZE
