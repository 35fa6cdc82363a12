#!/usr/bin/env python3
"""Load generator of scripts/bench_server.py: idle senders, and full signalling exchanges.

An idle sender is one WebSocket that said `hello`, got `welcome` and then stays silent (it
still answers the server's pings). bench_server.py spreads them over several processes of

    python3 scripts/bench_server_load.py --urls ws://127.0.0.1:8080/ws --first 0 --count 4000

because a process here may open at most 20,000 files. Each connection comes from its own
loopback source address 127.x.y.z, like many users behind different addresses. The process
speaks JSON lines with its parent: it prints `{"ready": ...}` once started; on the line
`open` it opens its senders and prints what it got; on `close` (or end of input) it closes
them all at once, prints how many, and exits.

`exchange()` is the other half: one sender and one receiver doing a CLI's signalling
choreography to completion (client.md §4.4, server-web.md §2.5), checking that every
relayed message arrives, in order.

Runs on asyncio with a lean WebSocket client (bench_server_ws.py): thousands of idle
connections in one process cost a small object each, where a blocking client would need a
thread per connection. The exchanges share the machine's two cores with the server under
test, so their client side is kept cheap: every message text is built once, and received
messages are checked with the C JSON parser (type and order; the relayed ones byte for byte).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_server_ws import HttpRefused, WsClient, dial  # noqa: E402

from sp2p.proto.signal import (  # noqa: E402
    Candidate,
    ClientType,
    Crypto,
    Direct,
    Envelope,
    FileInfo,
    Hello,
    Join,
    Sdp,
    SignalType,
    Welcome,
)

#: first source-address index of the exchanges, far above any idle sender's
EXCHANGE_BASE = 8_000_000
CANDIDATES = 3  #: ICE candidates each side trickles in an exchange

#: an SDP of a realistic size (aiortc's offers are 1-2 KB)
_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "a=x-bench:" + "0" * 1200 + "\r\n"


def source_ip(index: int) -> str:
    """Loopback address number `index`: 127.16.0.1, 127.16.0.2, ... (254 per /24)."""
    return f"127.{16 + index // 65024}.{(index // 254) % 256}.{1 + index % 254}"


class ServerRefused(Exception):
    """The server answered with an `error` message (or something unexpected)."""


def reason(exc: BaseException) -> str:
    """A short, countable name for why a connection or an exchange failed."""
    if isinstance(exc, ServerRefused):
        return str(exc)
    if isinstance(exc, HttpRefused):
        return f"http {exc.status}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} errno {exc.errno}"
    return type(exc).__name__


async def expect(ws: WsClient, msg_type: SignalType, text: str | None = None) -> dict[str, Any]:
    """The next message, which must be `msg_type`; with `text`, exactly that text (a relayed
    message arrives byte for byte, in order). Returns the parsed message ({} for `text`)."""
    while True:
        raw = await ws.recv()
        if raw == text:
            return {}
        msg = json.loads(raw)
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == SignalType.NOTICE:  # ours, informational
            continue
        if kind == SignalType.ERROR:
            raise ServerRefused(f"error {msg.get('payload', {}).get('code')}")
        if kind != msg_type:
            raise ServerRefused(f"got {kind} for {msg_type}")
        if text is not None:
            raise ServerRefused(f"{msg_type} changed in transit")
        assert isinstance(msg, dict)
        return msg


async def open_idle(url: str, src: str, timeout: float) -> WsClient:
    ws = await dial(url, src, timeout)
    try:
        async with asyncio.timeout(timeout):
            ws.send(_HELLO)
            await expect(ws, SignalType.WELCOME)
    except BaseException:
        ws.abort()
        raise
    return ws


# ---------------------------------------------------------------------------------------
# one full exchange


@dataclass(frozen=True)
class ExchangeTimes:
    paired: float  #: sender connect -> peer-joined
    total: float  #: sender connect -> every message relayed both ways, peer-left seen


#: an exchange's steps in order: the sender's connection, its hello answered (welcome), the
#: receiver's connection (TCP and upgrade), its join answered (welcome), the sender told
#: (peer-joined), the rest
STAGES = ("connect", "hello", "dial", "join", "peer-joined", "exchange")
#: the step each one's time is counted from: peer-joined follows the join, not the
#: receiver's welcome (the two race)
STEP_FROM = {"connect": None, "hello": "connect", "dial": "hello", "join": "dial",
             "peer-joined": "dial", "exchange": "join"}  # fmt: skip


@dataclass
class Progress:
    """The steps an exchange finished, each with its time from its start (perf_counter
    seconds): a failed exchange's stage is the first step it did not finish."""

    start: float = field(default_factory=time.perf_counter)
    done: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        self.done[stage] = time.perf_counter() - self.start

    @property
    def stage(self) -> str:
        return next((s for s in STAGES if s not in self.done), "done")

    def steps(self) -> dict[str, float]:
        """Each finished step's own time (seconds, from the step in STEP_FROM)."""
        done = self.done
        return {
            stage: done[stage] - (done[since] if since is not None else 0.0)
            for stage, since in STEP_FROM.items()
            if stage in done and (since is None or since in done)
        }


def _text(msg_type: SignalType, body: Any = None) -> str:
    return Envelope.build(msg_type, body).to_json()


def _crypto() -> str:
    """A fresh key per side and exchange, as a CLI sends (parallel TCP offered)."""
    key = base64.b64encode(os.urandom(32)).decode()
    return _text(SignalType.CRYPTO, Crypto(public_key=key, parallel_tcp=True))


def _candidates(side: str) -> tuple[str, ...]:
    return tuple(
        _text(
            SignalType.CANDIDATE,
            Candidate(f"candidate:{i} 1 udp 2130706431 127.0.0.1 {5000 + i} typ host {side}", "0", 0),
        )
        for i in range(CANDIDATES)
    )


# what every exchange sends besides its keys, built once (the server sees the same bytes)
_HELLO = _text(SignalType.HELLO, Hello(client_type=ClientType.CLI, client_os="linux", client_arch="amd64"))
_CONNECTED = _text(SignalType.CONNECTED)
_OFFER = _text(SignalType.OFFER, Sdp(_SDP, "offer"))
_ANSWER = _text(SignalType.ANSWER, Sdp(_SDP, "answer"))
_SENDER_CANDIDATES = _candidates("s")
_RECEIVER_CANDIDATES = _candidates("r")
_SENDER_DIRECT = _text(SignalType.DIRECT, Direct("127.0.0.1:40001"))
_RECEIVER_DIRECT = _text(SignalType.DIRECT, Direct("127.0.0.1:40002"))


async def _sender_side(ws: WsClient, progress: Progress, mine: str, theirs: str) -> float:
    await expect(ws, SignalType.PEER_JOINED)
    progress.mark("peer-joined")
    paired = progress.done["peer-joined"]
    ws.send(mine)
    await expect(ws, SignalType.CRYPTO, theirs)
    ws.send(_OFFER)
    for text in _SENDER_CANDIDATES:
        ws.send(text)
    ws.send(_SENDER_DIRECT)
    await expect(ws, SignalType.ANSWER, _ANSWER)
    for text in _RECEIVER_CANDIDATES:
        await expect(ws, SignalType.CANDIDATE, text)
    await expect(ws, SignalType.DIRECT, _RECEIVER_DIRECT)
    ws.send(_CONNECTED)
    await expect(ws, SignalType.CONNECTED, _CONNECTED)
    await expect(ws, SignalType.PEER_LEFT)  # the receiver closed (protocol v2)
    return paired


async def _receiver_side(ws: WsClient, progress: Progress, session_id: str, mine: str, theirs: str) -> None:
    ws.send(_text(SignalType.JOIN, Join(session_id, client_type=ClientType.CLI)))
    ws.send(mine)  # the CLI does not wait for welcome
    await expect(ws, SignalType.WELCOME)
    progress.mark("join")
    await expect(ws, SignalType.CRYPTO, theirs)
    await expect(ws, SignalType.OFFER, _OFFER)
    for text in _SENDER_CANDIDATES:
        await expect(ws, SignalType.CANDIDATE, text)
    await expect(ws, SignalType.DIRECT, _SENDER_DIRECT)
    ws.send(_ANSWER)
    for text in _RECEIVER_CANDIDATES:
        ws.send(text)
    ws.send(_RECEIVER_DIRECT)
    ws.send(_CONNECTED)
    await expect(ws, SignalType.CONNECTED, _CONNECTED)
    ws.close()


async def exchange(
    sender_url: str, receiver_url: str, index: int, timeout: float = 10.0,
    progress: Progress | None = None, gap: float = 0.0,
) -> ExchangeTimes:
    """A sender and a receiver from their own source addresses, through to peer-left;
    `progress` notes each step finished (see STAGES); the receiver dials `gap` seconds
    after the sender's welcome (0: at once)."""
    progress = progress or Progress()
    progress.start = time.perf_counter()
    async with asyncio.timeout(timeout):
        sender = await dial(sender_url, source_ip(EXCHANGE_BASE + 2 * index), timeout)
        progress.mark("connect")
        try:
            sender.send(_HELLO)
            welcome = Welcome.from_payload((await expect(sender, SignalType.WELCOME))["payload"])
            progress.mark("hello")
            blob = base64.b64encode(os.urandom(160)).decode()
            sender.send(_text(SignalType.FILE_INFO, FileInfo(blob)))
            keys = (_crypto(), _crypto())  # sender's, receiver's
            await asyncio.sleep(gap)
            receiver = await dial(receiver_url, source_ip(EXCHANGE_BASE + 2 * index + 1), timeout)
            progress.mark("dial")
            try:
                paired, _ = await asyncio.gather(
                    _sender_side(sender, progress, *keys),
                    _receiver_side(receiver, progress, welcome.session_id, keys[1], keys[0]),
                )
            finally:
                receiver.abort()
        finally:
            sender.abort()
    progress.mark("exchange")
    return ExchangeTimes(paired, progress.done["exchange"])


# ---------------------------------------------------------------------------------------
# the holding process


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def hold(
    urls: list[str], first: int, count: int, parallel: int, timeout: float, close_mode: str
) -> None:
    _say(ready=True, pid=os.getpid(), nofile=raise_nofile())
    if await _read_line() != "open":
        return
    held: list[WsClient] = []
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(parallel)
    last = [time.monotonic()]
    start = time.monotonic()

    async def one(i: int) -> None:
        async with gate:
            try:
                held.append(await open_idle(urls[(first + i) % len(urls)], source_ip(first + i), timeout))
                last[0] = time.monotonic()
            except Exception as exc:  # counted by reason, the benchmark goes on
                errors[reason(exc)] += 1

    await asyncio.gather(*(one(i) for i in range(count)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _say(opened=len(held), errors=dict(errors), start=start, end=last[0], cpu=usage.ru_utime + usage.ru_stime)
    await _read_line()  # "close", or "" at end of input
    dropped = sum(1 for ws in held if ws.lost)
    for ws in held:  # all at once, like a load balancer or a network going away
        if close_mode == "ws":
            ws.close()  # a close frame, then FIN
            continue
        if close_mode == "rst" and ws.transport is not None:
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.abort()
    # abort() and close() only schedule the socket's close for the loop's next turn: the
    # close happened (FIN or RST out) once that turn ran, and is stamped then
    await asyncio.sleep(0)
    _say(closed=len(held), dropped=dropped, at=time.monotonic())
    await asyncio.sleep(0.2)  # let the FINs leave before the process ends


def main() -> int:
    parser = argparse.ArgumentParser(description="hold idle senders for bench_server.py")
    parser.add_argument("--urls", required=True, help="comma-separated ws:// URLs, used round robin")
    parser.add_argument("--first", type=int, default=0, help="first source-address index")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=64, help="handshakes in flight")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--close-mode", choices=["fin", "rst", "ws"], default="fin")
    args = parser.parse_args()
    asyncio.run(
        hold(args.urls.split(","), args.first, args.count, args.parallel, args.timeout, args.close_mode)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
