"""Every entry of the original implementation's crypto_vectors.json, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sp2p.proto.codes import base62_decode, base62_encode
from sp2p.proto.constants import Role
from sp2p.proto.fileinfo import decrypt_file_info, file_info_key
from sp2p.proto.frames import FrameDecoder, FrameOpener, FrameSealer, SealedFrame
from sp2p.proto.keys import KeyPair, confirmation_mac, derive_session_keys

VECTORS_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors" / "crypto_vectors.json"


def _load() -> dict[str, Any]:
    if not VECTORS_PATH.exists():  # only outside CI; CI always has ../shared
        pytest.fail(f"vector file missing: {VECTORS_PATH}")
    return json.loads(VECTORS_PATH.read_text())  # type: ignore[no-any-return]


V = _load()
KD = V["keyDerivation"]
h = bytes.fromhex


@pytest.mark.parametrize("case", V["base62"], ids=lambda c: c["encoded"])
def test_base62(case: dict[str, str]) -> None:
    assert base62_encode(h(case["rawHex"])) == case["encoded"]
    assert base62_decode(case["encoded"]) == h(case["rawHex"])


@pytest.mark.parametrize("role", [Role.SENDER, Role.RECEIVER])
def test_key_derivation(role: Role) -> None:
    sender = KeyPair.from_private(h(KD["senderPrivateHex"]))
    receiver = KeyPair.from_private(h(KD["receiverPrivateHex"]))
    assert sender.public.hex() == KD["senderPublicHex"]
    assert receiver.public.hex() == KD["receiverPublicHex"]
    own = sender if role is Role.SENDER else receiver
    keys = derive_session_keys(
        role=role,
        seed=h(KD["seedHex"]),
        session_id=KD["sessionId"],
        private=own.private,
        sender_pub=sender.public,
        receiver_pub=receiver.public,
    )
    exp = KD["expected"]
    assert keys.k_s2r.hex() == exp["senderToReceiverHex"]
    assert keys.k_r2s.hex() == exp["receiverToSenderHex"]
    assert keys.k_confirm.hex() == exp["confirmHex"]
    assert keys.verify_code == exp["verifyCode"]
    assert len({keys.k_s2r, keys.k_r2s, keys.k_confirm}) == 3


@pytest.mark.parametrize("name", ["s2rFrameTest", "r2sFrameTest"])
def test_derived_key_frames(name: str) -> None:
    case = KD[name]
    key = h(KD["expected"]["senderToReceiverHex" if name.startswith("s2r") else "receiverToSenderHex"])
    _check_frame(key, case)


@pytest.mark.parametrize("case", V["encryptedFrames"], ids=lambda c: f"type{c['msgType']}")
def test_encrypted_frames(case: dict[str, Any]) -> None:
    _check_frame(h(case["keyHex"]), case)


def _check_frame(key: bytes, case: dict[str, Any]) -> None:
    sealer = FrameSealer(key)
    wire = sealer.seal_at(case["sequence"], case["msgType"], h(case["plaintextHex"]))
    assert wire.hex() == case["expectedFrameHex"]
    dec = FrameDecoder()
    dec.receive_data(wire)
    sealed = dec.next_frame()
    assert isinstance(sealed, SealedFrame)
    opener = FrameOpener(key)
    opener.expected_seq = case["sequence"]
    frame = opener.open(sealed)
    assert (frame.msg_type, frame.seq, frame.body) == (case["msgType"], case["sequence"], h(case["plaintextHex"]))


@pytest.mark.parametrize("role", [Role.SENDER, Role.RECEIVER])
def test_confirmation(role: Role) -> None:
    c = V["confirmation"]
    mac = confirmation_mac(h(c["confirmKeyHex"]), role, h(c["senderPubHex"]), h(c["receiverPubHex"]))
    assert mac.hex() == c["expectedSenderHex" if role is Role.SENDER else "expectedReceiverHex"]


def test_file_info() -> None:
    c = V["fileInfo"]
    assert file_info_key(h(c["seedHex"])).hex() == c["derivedKeyHex"]
    assert decrypt_file_info(h(c["seedHex"]), h(c["encryptedHex"])) == h(c["plaintextHex"])
