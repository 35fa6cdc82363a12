"""Key schedule properties and the handshake cases C8, C9, C11, C12, C13."""

from __future__ import annotations

import pytest

from sp2p.errors import KeyConfirmationError
from sp2p.proto.constants import Role
from sp2p.proto.keys import KeyPair, SessionKeys, derive_session_keys

SEED = bytes(range(16))


def _pair(seed_s: bytes = SEED, seed_r: bytes = SEED, sid_s: str = "abcdefgh", sid_r: str = "abcdefgh",
          sender: KeyPair | None = None, receiver: KeyPair | None = None) -> tuple[SessionKeys, SessionKeys]:
    s = sender or KeyPair.generate()
    r = receiver or KeyPair.generate()
    ks = derive_session_keys(role=Role.SENDER, seed=seed_s, session_id=sid_s, private=s.private,
                             sender_pub=s.public, receiver_pub=r.public)
    kr = derive_session_keys(role=Role.RECEIVER, seed=seed_r, session_id=sid_r, private=r.private,
                             sender_pub=s.public, receiver_pub=r.public)
    return ks, kr


def test_both_sides_agree_and_directions_differ() -> None:
    ks, kr = _pair()
    assert ks.send_key == kr.recv_key and ks.recv_key == kr.send_key
    assert ks.send_key != ks.recv_key
    assert ks.verify_code == kr.verify_code and len(ks.verify_code) == 8
    ks.check_peer_confirmation(kr.own_confirmation())
    kr.check_peer_confirmation(ks.own_confirmation())


def test_parallel_keys_are_directional_and_per_index() -> None:
    ks, kr = _pair()
    keys = set()
    for i in (1, 2, 5):
        s_send, s_recv = ks.parallel_keys(i)
        r_send, r_recv = kr.parallel_keys(i)
        assert (s_send, s_recv) == (r_recv, r_send)
        keys.update({s_send, s_recv})
    keys.update({ks.k_s2r, ks.k_r2s})
    assert len(keys) == 8
    assert ks.parallel_token() == kr.parallel_token() and len(ks.parallel_token()) == 16
    with pytest.raises(ValueError):
        ks.parallel_keys(0)


def test_parallel_keys_match_spec_values() -> None:
    # client.md §2.2 analyst values for the keyDerivation vector
    s = KeyPair.from_private(bytes.fromhex("e802e18667ed339d99a8b5970fd816e6b70b18dd53c774d47410d4a794cd4d8c"))
    r = KeyPair.from_private(bytes.fromhex("0d5906f23c67cc1a8a828404c1bded4a976fd5ccfcdb6a15b8fdb941482d4c60"))
    ks, _ = _pair(seed_s=bytes.fromhex("67439b41d337131f8832f5d0da907546"), sid_s="test1234", sender=s, receiver=r)
    assert ks.parallel_token().hex() == "bf5232f15c66a439a838f13fe2a8998d"
    assert ks.parallel_keys(1)[0].hex() == "782b94b532016799fd9edcb1dedd38312369eeba56bbe0048ed237672e1607f0"
    assert ks.parallel_keys(2)[1].hex() == "3dc43aebd731057f0bca84288a0d94bb505afb6f211a2b8110cd70890b4d6f45"


@pytest.mark.parametrize(
    "variant",
    [
        {"seed_r": bytes(range(1, 17))},  # C11: one seed differs
        {"sid_r": "abcdefgj"},  # C11: right seed, other session
    ],
)
def test_c11_wrong_code_fails_confirmation(variant: dict[str, object]) -> None:
    ks, kr = _pair(**variant)  # type: ignore[arg-type]
    with pytest.raises(KeyConfirmationError, match="wrong code"):
        ks.check_peer_confirmation(kr.own_confirmation())
    with pytest.raises(KeyConfirmationError):
        kr.check_peer_confirmation(ks.own_confirmation())


def test_c9_reflected_confirmation_is_rejected() -> None:
    ks, _ = _pair()
    with pytest.raises(KeyConfirmationError):
        ks.check_peer_confirmation(ks.own_confirmation())


def test_c8_replayed_confirmation_from_another_session() -> None:
    ks_a, kr_a = _pair()
    ks_b, _ = _pair()  # same seed, fresh ephemeral keys
    with pytest.raises(KeyConfirmationError):
        ks_b.check_peer_confirmation(kr_a.own_confirmation())


def test_c12_mitm_key_substitution_is_detected() -> None:
    s, r, m = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    # the server hands the sender the attacker's key as "receiver", and vice versa
    ks = derive_session_keys(role=Role.SENDER, seed=SEED, session_id="abcdefgh", private=s.private,
                             sender_pub=s.public, receiver_pub=m.public)
    kr = derive_session_keys(role=Role.RECEIVER, seed=SEED, session_id="abcdefgh", private=r.private,
                             sender_pub=m.public, receiver_pub=r.public)
    assert ks.verify_code != kr.verify_code
    with pytest.raises(KeyConfirmationError, match="tampered"):
        ks.check_peer_confirmation(kr.own_confirmation())


@pytest.mark.parametrize("mac", [b"", b"\x00" * 31, b"\x00" * 33])
def test_c13_malformed_confirmation(mac: bytes) -> None:
    ks, kr = _pair()
    with pytest.raises(KeyConfirmationError):
        ks.check_peer_confirmation(mac)
    with pytest.raises(KeyConfirmationError):
        ks.check_peer_confirmation(kr.own_confirmation() + b"\x00")


def test_c13_constant_time_compare_is_used() -> None:
    import inspect

    import sp2p.proto.keys as keys

    src = inspect.getsource(keys.SessionKeys.check_peer_confirmation)
    assert "compare_digest" in src and "==" not in src


def test_repr_never_shows_key_material() -> None:
    ks, _ = _pair()
    text = repr(ks)
    for secret in (ks.k_s2r, ks.k_r2s, ks.k_confirm, ks.prk):
        assert secret.hex() not in text
