"""D1 of docs/webrtc-tuning.md: after the handshake, DTLS application data is sealed and
opened by webrtc_records (one AES-GCM call per record) instead of pyOpenSSL.

OpenSSL still does the handshake and keeps every other record type (alerts, a late
handshake retransmission). The hand-over, per association, only for DTLS 1.2 with
AES-128-GCM:
  receive  from the first epoch-1 application-data record that our derived read key opens
           (if it does not, OpenSSL keeps the job for good); records older than that one
           are refused, later ones pass a replay window.
  send     once receiving was handed over (the peer finished its handshake, so OpenSSL has
           no flight left to retransmit) and our derived write key opened a record OpenSSL
           sealed; our sequence numbers continue after OpenSSL's. Anything OpenSSL still
           writes in that epoch (its close_notify) is opened and sealed again under our
           numbers, so no nonce is ever used twice.
The records we seal leave through webrtc_udp's Outbox (G1: batched, UDP GSO) when the
nominated ICE pair is one of our batched sockets, else through aioice as before.
Installed by webrtc_sctp.apply() on the aiortc release it was written against.
"""

from __future__ import annotations

import logging
from typing import Any

from sp2p.net.webrtc_records import (
    APPLICATION_DATA,
    CIPHER,
    SEQ_MASK,
    VERSION,
    RecordLayer,
    records,
)
from sp2p.net.webrtc_udp import outbox

log = logging.getLogger(__name__)

#: (class name, function) this module replaces; tests/net/test_webrtc_patches.py fingerprints each
PATCHED = (
    ("RTCDtlsTransport", "_recv_next"),
    ("RTCDtlsTransport", "_send_data"),
    ("RTCDtlsTransport", "_write_ssl"),
)

_OFF = False  # a transport's _sp2p_layer when the record layer cannot take over


def install(mod: Any) -> None:
    cls = mod.RTCDtlsTransport
    connected = mod.State.CONNECTED
    ssl_error = mod.SSL.Error
    zero_return = mod.SSL.ZeroReturnError
    orig_recv_next = cls._recv_next
    orig_send_data = cls._send_data
    orig_write_ssl = cls._write_ssl

    def layer_of(self: Any) -> RecordLayer | None:
        """The transport's record layer, made on first use after the handshake."""
        layer = self.__dict__.get("_sp2p_layer")
        if layer is not None or self._state != connected:
            return layer or None  # kept after the state leaves CONNECTED (close_notify)
        layer = _OFF
        ssl = self._ssl
        try:
            if ssl.get_protocol_version_name() == VERSION and ssl.get_cipher_name() == CIPHER:
                layer = RecordLayer.for_role(self._role, ssl.master_key(), ssl.client_random(),
                                             ssl.server_random())
        except (ssl_error, AttributeError, ValueError) as exc:
            log.debug("dtls: record layer not available (%s)", exc)
        self._sp2p_layer = layer
        self._sp2p_reading = False
        self._sp2p_top_sent = -1  # newest epoch-1 sequence OpenSSL sent
        return layer or None

    async def recv_next(self: Any) -> None:
        layer = layer_of(self)
        if layer is None:
            await orig_recv_next(self)
            return
        data = await self.transport._recv()
        self._RTCDtlsTransport__rx_bytes += len(data)
        self._RTCDtlsTransport__rx_packets += 1
        if not 19 < data[0] < 64:
            return  # SRTP/SRTCP: sp2p negotiates no media
        receiver = self._data_receiver
        fast = True
        for kind, epoch_seq, record in records(data):
            if fast and kind == APPLICATION_DATA and epoch_seq >> 48 == layer.epoch:
                plain = layer.open(kind, epoch_seq, record)
                if plain is not None:
                    self._sp2p_reading = True
                    if plain and receiver is not None:
                        await receiver._handle_data(plain)
                    continue
                if self._sp2p_reading:
                    continue  # forged or replayed: dropped, as OpenSSL would
                log.debug("dtls: derived read key does not open the peer's records; record layer off")
                self._sp2p_layer = _OFF
                fast = False
            await through_openssl(self, bytes(record))

    async def through_openssl(self: Any, record: bytes) -> None:
        # aiortc 1.16's DTLS branch of _recv_next, for one record
        self._ssl.bio_write(record)
        try:
            data = self._ssl.recv(1500)
        except zero_return:
            data = None
        except ssl_error:
            data = b""
        await self._write_ssl()
        if data is None:
            raise ConnectionError
        if data and self._data_receiver:
            await self._data_receiver._handle_data(data)

    def sending_layer(self: Any) -> RecordLayer | None:
        layer = layer_of(self)
        if layer is not None and layer.next_seq < 0:
            if not self._sp2p_reading or self._sp2p_top_sent < 0:
                return None
            layer.start_sending(self._sp2p_top_sent + 1)
        return layer

    async def send_data(self: Any, data: bytes) -> None:
        layer = sending_layer(self)
        if layer is None or self._state != connected:
            await orig_send_data(self, data)
            return
        packet = layer.seal(APPLICATION_DATA, data)
        box = outbox(self.transport)
        if box is not None:
            box.put(packet)  # G1: leaves with the rest of this loop iteration's packets
        else:
            await self.transport._send(packet)
        self._RTCDtlsTransport__tx_bytes += len(packet)
        self._RTCDtlsTransport__tx_packets += 1

    async def write_ssl(self: Any) -> None:
        # Once connected, every record OpenSSL writes passes here: watched until we send,
        # re-sealed under our sequence numbers after.
        layer = layer_of(self)
        if layer is None:
            await orig_write_ssl(self)
            return
        try:
            data = self._ssl.bio_read(1500)
        except ssl_error:
            data = b""
        if data and layer.next_seq >= 0:
            data = reseal(layer, data)
        elif data:
            watch(self, layer, data)
        if data:
            box = outbox(self.transport)
            if box is not None:
                box.flush()  # OpenSSL's record (close_notify) after the data sealed before it
            await self.transport._send(data)
            self._RTCDtlsTransport__tx_bytes += len(data)
            self._RTCDtlsTransport__tx_packets += 1

    setattr(cls, "_recv_next", recv_next)  # noqa: B010
    setattr(cls, "_send_data", send_data)  # noqa: B010
    setattr(cls, "_write_ssl", write_ssl)  # noqa: B010


def sending(transport: Any) -> bool:
    """Whether our record layer seals this DTLS transport's application data."""
    layer = transport.__dict__.get("_sp2p_layer")
    return bool(layer) and layer.next_seq >= 0


def watch(transport: Any, layer: RecordLayer, data: bytes) -> None:
    """Note the newest sequence number OpenSSL used in our epoch, once our write key is
    known to open its records."""
    for _kind, epoch_seq, record in records(data):
        if epoch_seq >> 48 != layer.epoch:
            continue
        if transport._sp2p_top_sent < 0 and layer.open_own(record) is None:
            log.debug("dtls: derived write key does not open OpenSSL's records; record layer off")
            transport._sp2p_layer = _OFF
            return
        transport._sp2p_top_sent = max(transport._sp2p_top_sent, epoch_seq & SEQ_MASK)


def reseal(layer: RecordLayer, data: bytes) -> bytes:
    out = []
    for kind, epoch_seq, record in records(data):
        if epoch_seq >> 48 != layer.epoch:
            out.append(bytes(record))
            continue
        plain = layer.open_own(record)
        if plain is not None:
            out.append(layer.seal(kind, plain))
    return b"".join(out)

