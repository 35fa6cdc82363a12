"""Error classes -> exit codes: one table at the CLI's boundary (sp2p/status.py), none in the errors."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from sp2p import errors
from sp2p.status import ExitStatus, exit_status_of

EXPECTED = {
    "Sp2pError": ExitStatus.ERROR,
    "UsageError": ExitStatus.USAGE,
    "InvalidCodeError": ExitStatus.ERROR,  # core error; the CLI rewraps a typed code as UsageError
    "SignalingError": ExitStatus.SIGNALING,
    "SignalFormatError": ExitStatus.SIGNALING,
    "ServerUnreachable": ExitStatus.SIGNALING,
    "ConnectError": ExitStatus.CONNECT,
    "SecurityError": ExitStatus.SECURITY,
    "KeyConfirmationError": ExitStatus.SECURITY,
    "IntegrityError": ExitStatus.SECURITY,
    "TransferError": ExitStatus.TRANSFER,
    "ConnectionLost": ExitStatus.TRANSFER,
    "PeerCancelled": ExitStatus.TRANSFER,
    "RemoteError": ExitStatus.TRANSFER,
    "Declined": ExitStatus.TRANSFER,
    "VerificationError": ExitStatus.TRANSFER,
    "RemoteProtocolError": ExitStatus.TRANSFER,
    "StreamTruncated": ExitStatus.TRANSFER,
    "LocalIOError": ExitStatus.LOCAL_IO,
    "TransferTimeout": ExitStatus.TIMEOUT,
    "LocalProtocolError": ExitStatus.ERROR,
}


def _classes() -> dict[str, type[errors.Sp2pError]]:
    return {
        name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.Sp2pError) and cls.__module__ == errors.__name__
    }


def test_every_error_class_is_listed() -> None:
    assert set(_classes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exit_status_of(name: str) -> None:
    cls = _classes()[name]
    exc = cls.__new__(cls)  # the mapping looks only at the class
    assert exit_status_of(exc) == EXPECTED[name]


def test_errors_know_nothing_of_exit_codes() -> None:
    tree = ast.parse(Path(errors.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__"}
    assert not any(hasattr(cls, "exit_status") for cls in _classes().values())


@pytest.mark.parametrize(("remaining", "browser", "status", "message"), [
    (25.0, False, ExitStatus.TRANSFER, "the receiver left while the two sides were connecting"),
    (5.0, False, ExitStatus.CONNECT, "could not establish a peer-to-peer connection (the receiver gave up too)"),
    (15.0, True, ExitStatus.CONNECT,
     "could not establish a peer-to-peer connection (the receiver's browser gave up)"),
])
def test_a_peer_leaving_mid_connect(remaining: float, browser: bool, status: ExitStatus, message: str) -> None:
    """Left early: interrupted or stopped, a cancel (6). Left near the end of the attempt both
    sides run for as long: it found no path either (4). A browser's attempt is shorter, less
    once ICE fails: its leaving halfway through ours is no path found (4). Never a relay retry."""
    from sp2p.flow.connect import PeerLeftError, _peer_left
    from sp2p.proto.constants import Role

    exc = _peer_left(Role.SENDER, remaining, timeout=30.0, browser=browser)
    assert isinstance(exc, PeerLeftError)
    assert (exit_status_of(exc), exc.message, exc.hint) == (status, message, None)
