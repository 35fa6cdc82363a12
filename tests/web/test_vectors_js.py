"""The browser's crypto (static/js) reproduces every entry of the shared Go vectors, in Chromium."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.web.conftest import vectors_path

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    path = vectors_path()
    assert path.exists(), f"shared vectors missing at {path}"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def call(page: Any, fn: str, arg: Any = None) -> Any:
    return page.evaluate(
        "async ([fn, arg]) => (await import('/testjs/vectors_check.js'))[fn](arg)", [fn, arg]
    )


def test_base62(js_page: Any, vectors: dict[str, Any]) -> None:
    got = call(js_page, "base62", vectors["base62"])
    assert len(got) == len(vectors["base62"]) == 3
    for entry, out in zip(vectors["base62"], got, strict=True):
        assert out["encoded"] == entry["encoded"]
        assert out["decodedHex"] == entry["rawHex"]


def test_key_derivation_and_frames(js_page: Any, vectors: dict[str, Any]) -> None:
    v = vectors["keyDerivation"]
    exp = v["expected"]
    got = call(js_page, "keyDerivation", v)
    assert got["sharedFromSenderHex"] == exp["sharedSecretHex"]
    assert got["sharedFromReceiverHex"] == exp["sharedSecretHex"]
    assert got["s2rHex"] == exp["senderToReceiverHex"]
    assert got["r2sHex"] == exp["receiverToSenderHex"]
    assert got["confirmHex"] == exp["confirmHex"]
    assert got["verifyCode"] == exp["verifyCode"]
    assert len({got["s2rHex"], got["r2sHex"], got["confirmHex"]}) == 3
    for name, test in (("s2r", v["s2rFrameTest"]), ("r2s", v["r2sFrameTest"])):
        assert got[name + "FrameHex"] == test["expectedFrameHex"]
        opened = got[name + "Opened"]
        want = {"type": test["msgType"], "bodyHex": test["plaintextHex"], "consumedAll": True}
        assert opened == want


def test_confirmation(js_page: Any, vectors: dict[str, Any]) -> None:
    v = vectors["confirmation"]
    got = call(js_page, "confirmation", v)
    assert got == {"senderHex": v["expectedSenderHex"], "receiverHex": v["expectedReceiverHex"]}


def test_encrypted_frames(js_page: Any, vectors: dict[str, Any]) -> None:
    entries = vectors["encryptedFrames"]
    got = call(js_page, "encryptedFrames", entries)
    assert len(got) == len(entries) == 3
    for entry, out in zip(entries, got, strict=True):
        assert out["frameHex"] == entry["expectedFrameHex"]
        assert out["type"] == entry["msgType"]
        assert out["bodyHex"] == entry["plaintextHex"]


def test_file_info(js_page: Any, vectors: dict[str, Any]) -> None:
    v = vectors["fileInfo"]
    got = call(js_page, "fileInfo", v)
    assert got["keyHex"] == v["derivedKeyHex"]
    assert got["plaintextHex"] == v["plaintextHex"]
    assert got["roundTripHex"] == v["plaintextHex"]
    assert got["freshNonce"] is True
    assert got["tamperedRejected"] is True


def test_fresh_keys_and_bad_peer_keys(js_page: Any) -> None:
    got = call(js_page, "freshKeys")
    assert got == {"agree": True, "pubLen": 32, "rejected": [True, True, True]}
