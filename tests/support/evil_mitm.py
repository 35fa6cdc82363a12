"""A man in the middle for the hostile signaling server (security case C12), used as the
`rewrite` of tests/support/evil_server.py:

    mitm = Mitm(host)                       # the attacker's address, where its listeners live
    with EvilServer(upstream, mitm.rewrite, host=host) as evil:
        ...                                 # run a sender and a receiver through evil.http_url
        evil.call(mitm.close())
    mitm.seen                               # every byte that crossed the attacker, and from whom

It does everything a signaling server can: hands each peer the attacker's X25519 key (unless
`swap_keys=False`: then it only watches what the peers' own keys protect); rewrites
each `direct` address to a listener of its own that relays to the real one; answers the sender's
WebRTC offer itself and offers the receiver its own, so both SDP fingerprints are the attacker's
DTLS certificate and both data channels end at the attacker, which relays between them; drops
the peers' trickled candidates (they would let the peers find each other). The attacker knows
neither the code nor, therefore, the session keys: key confirmation must fail on both sides
and nothing readable may cross it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sp2p.proto.keys import KeyPair

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCPeerConnection

Messages = list[dict[str, Any]]
FINGERPRINT = re.compile(r"^a=fingerprint:(.+)$", re.M)


@dataclass(frozen=True)
class Seen:
    path: str  # "tcp" or "webrtc"
    sender: str  # the peer the bytes came from: "sender" or "receiver"
    data: bytes  # tcp: all a connection carried one way; webrtc: one data-channel message


def fingerprints(sdp: str) -> set[str]:
    return set(FINGERPRINT.findall(sdp.replace("\r\n", "\n")))


class Mitm:
    def __init__(self, host: str, *, swap_keys: bool = True) -> None:
        self.host = host
        self.swap_keys = swap_keys
        self.key = KeyPair.generate().public_b64()
        self.seen: list[Seen] = []
        #: (the fingerprints the peer put in its SDP, the ones the attacker passed on instead)
        self.swapped_fingerprints: list[tuple[set[str], set[str]]] = []
        self.keys_swapped = 0
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pcs: list[RTCPeerConnection] = []
        self._answer_for_sender = ""
        self._channels: dict[str, RTCDataChannel] = {}  # by the peer at its other end
        self._held: dict[str, list[bytes | str]] = {"sender": [], "receiver": []}

    def on(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    async def rewrite(self, msg: dict[str, Any], role: str) -> Messages:
        """`role` is the peer the real server meant `msg` for."""
        kind, payload = msg.get("type"), msg.get("payload")
        if not isinstance(payload, dict):
            return [msg]
        if kind == "crypto" and "publicKey" in payload and self.swap_keys:
            self.keys_swapped += 1
            return [{**msg, "payload": {**payload, "publicKey": self.key}}]
        if kind == "direct" and payload.get("tcp"):
            return [{**msg, "payload": {**payload, "tcp": await self._tcp_relay(payload["tcp"], role)}}]
        if kind == "offer" and role == "receiver":
            return [self._sdp(msg, await self._take_offer(payload["sdp"]))]
        if kind == "answer" and role == "sender":
            return [self._sdp(msg, await self._take_answer(payload["sdp"]))]
        if kind == "candidate":
            return []
        return [msg]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pc in self._pcs:
            await pc.close()

    def _sdp(self, msg: dict[str, Any], sdp: str) -> dict[str, Any]:
        self.swapped_fingerprints.append((fingerprints(msg["payload"]["sdp"]), fingerprints(sdp)))
        return {**msg, "payload": {**msg["payload"], "sdp": sdp}}

    # ---------------------------------------------------------------- direct TCP

    async def _tcp_relay(self, address: str, dialer: str) -> str:
        """A listener that relays whoever dials it (`dialer`) to the real `address`."""
        host, _, port = address.rpartition(":")
        target = (host.strip("[]"), int(port))

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._spawn(self._relay_tcp(target, dialer, reader, writer))

        server = await asyncio.start_server(accepted, self.host, 0)
        self._servers.append(server)
        return f"{self.host}:{server.sockets[0].getsockname()[1]}"

    async def _relay_tcp(self, target: tuple[str, int], dialer: str,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        other = "sender" if dialer == "receiver" else "receiver"
        await asyncio.gather(self._pipe(reader, up_writer, dialer), self._pipe(up_reader, writer, other))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, who: str) -> None:
        """Relays one direction of one connection, recorded as one Seen when it ends."""
        data = bytearray()
        try:
            while chunk := await src.read(1 << 16):
                data += chunk
                dst.write(chunk)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()
            self.seen.append(Seen("tcp", who, bytes(data)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- WebRTC

    async def _take_offer(self, sdp: str) -> str:
        """Answer the sender ourselves; offer the receiver a connection of our own."""
        from aiortc import RTCPeerConnection, RTCSessionDescription

        to_sender = RTCPeerConnection()
        to_receiver = RTCPeerConnection()
        self._pcs += [to_sender, to_receiver]
        to_sender.on("datachannel", lambda channel: self._attach("sender", channel))
        self._attach("receiver", to_receiver.createDataChannel("sp2p", ordered=True))
        await to_sender.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await to_sender.setLocalDescription(await to_sender.createAnswer())
        self._answer_for_sender = to_sender.localDescription.sdp
        await to_receiver.setLocalDescription(await to_receiver.createOffer())
        return str(to_receiver.localDescription.sdp)

    async def _take_answer(self, sdp: str) -> str:
        from aiortc import RTCSessionDescription

        await self._pcs[1].setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return self._answer_for_sender

    def _attach(self, peer: str, channel: RTCDataChannel) -> None:
        """`channel` leads to `peer`: record what it says and pass it to the other one."""
        other = "sender" if peer == "receiver" else "receiver"
        self._channels[peer] = channel

        def flush() -> None:
            held = self._held[peer]
            while held:
                channel.send(held.pop(0))

        def relay(message: bytes | str) -> None:
            data = message.encode() if isinstance(message, str) else message
            self.seen.append(Seen("webrtc", peer, data))
            target = self._channels.get(other)
            if target is not None and target.readyState == "open":
                target.send(message)
            else:
                self._held[other].append(message)

        on: Callable[..., Any] = channel.on
        on("message", relay)
        on("open", flush)
        if channel.readyState == "open":
            flush()


def never_readable(seen: list[Seen], secrets: list[bytes]) -> None:
    """Nothing that crossed the attacker holds any of `secrets` (a file name, a file's content)."""
    for item in seen:
        for secret in secrets:
            assert secret not in item.data, f"{secret!r} crossed the attacker from the {item.sender}"
