"""What a server `error` message becomes on the client: the typed payload, Go's key matching,
friendly text for the codes users meet, the server's own words otherwise."""

from __future__ import annotations

from sp2p.errors import SignalingError
from sp2p.flow.session import hello, join, server_error
from sp2p.proto.codes import SESSION_ID_LENGTH
from sp2p.proto.signal import Envelope, ErrorCode, SignalType


def _error(payload: dict[str, object]) -> SignalingError:
    return server_error(Envelope(SignalType.ERROR, payload))


def test_a_known_code_reads_as_its_explanation_whatever_the_key_case() -> None:
    err = _error({"Code": ErrorCode.SESSION_FULL, "message": "session is full"})
    assert err.code == ErrorCode.SESSION_FULL
    assert "already connected" in err.message


def test_an_unknown_code_shows_the_server_message_cut_to_200_characters() -> None:
    err = _error({"code": "teapot", "message": "x" * 500})
    assert err.code == "teapot" and err.message == "server error: " + "x" * 200
    assert _error({"code": "teapot"}).message == "server error: teapot"


def test_a_malformed_error_payload_is_still_a_signaling_error() -> None:
    err = _error({"code": 5, "message": ["no"]})
    assert isinstance(err, SignalingError) and err.code == ""
    assert err.message == "server error: malformed error message"


def test_join_carries_the_hello_fields_and_the_session_id() -> None:
    first, second = hello(), join("k" * SESSION_ID_LENGTH)
    assert second.session_id == "k" * SESSION_ID_LENGTH
    assert (second.version, second.client_type, second.client_os) == (
        first.version,
        first.client_type,
        first.client_os,
    )
    assert Envelope.build(SignalType.JOIN, second).to_json().startswith('{"type":"join","payload":{"version":')
