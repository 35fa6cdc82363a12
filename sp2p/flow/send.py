"""The sender: hello -> code -> peer-joined -> keys -> connect -> transfer (client.md §4.4).

The one sequence above and the resume/heal hand-offs; the waiting room (code, QR, receive
commands, the wait for the receiver's key) is flow/waiting_room.py; what is not orchestration
lives in link/, fs/ and term/.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import BinaryIO

from sp2p.config import Config, share_base_url, signaling_url
from sp2p.config import normalize_base_url as _normalize_base_url
from sp2p.errors import ConnectionLost, Sp2pError, UsageError
from sp2p.flow.connect import PeerInfo
from sp2p.flow.early import EarlySignal
from sp2p.flow.heal import (
    Healer,
    Replayed,
    gave_up,
    healable,
    keeps_signaling,
    lost_line,
    our_heal,
    send_continuation,
)
from sp2p.flow.meet import framed, meet, relink, widen
from sp2p.flow.parallel import sender_link
from sp2p.flow.relay import ConsentFn, never
from sp2p.flow.resume import close_quietly, open_rest, resuming_line, send_resume
from sp2p.flow.session import (
    KeepAlive,
    hello,
    notice_update,
    wait_welcome,
)
from sp2p.flow.waiting_room import qr_while_waiting, show_code, wait_for_receiver
from sp2p.fs.outgoing import SendSource, inspect_sources
from sp2p.link.framed import FrameLink
from sp2p.link.send_pump import ChunkSource, SendPipeline
from sp2p.link.sources import FullChunkSource, StreamSource
from sp2p.net.signaling import SignalClient
from sp2p.proto.adapt import announce_zstd
from sp2p.proto.codes import format_code, generate_seed, share_url
from sp2p.proto.compression import ChunkCompressor, chunk_limit
from sp2p.proto.constants import MAX_CHUNK_SIZE, PREFER_TCP_THRESHOLD, Role
from sp2p.proto.fileinfo import encrypt_file_info
from sp2p.proto.heal import Continuation, ReplayWindow, continuation, spoken
from sp2p.proto.keys import KeyPair, derive_session_keys
from sp2p.proto.messages import Metadata
from sp2p.proto.resume import RESUME_VERSION, applies, negotiated
from sp2p.proto.signal import Envelope, FileInfo, SignalType
from sp2p.proto.transfer import SenderMachine
from sp2p.record import record, replace
from sp2p.term.progress import Progress
from sp2p.term.ui import Terminal, moved_line

#: a first chunk that zstd level 1 cannot shrink below this share means: do not announce zstd
SAMPLE_RATIO = 0.95
#: inputs and samples below this many bytes are too small to judge or to gain from zstd
SMALL_INPUT = 4096
#: a file cut after some of it arrived, between two CLIs that resume (the receiver keeps it)
RESUME_LATER = "The receiver keeps what arrived: run the same send again to resume"


@record()
class SendOptions:
    paths: list[str]
    name: str | None
    config: Config
    allow_loopback: bool = False
    stdin: BinaryIO | None = None
    qr: bool = False  #: draw the share URL's QR code at once (-qr)
    #: the signaling connection the CLI opened first; None connects here
    early: EarlySignal | None = None
    #: asked before the data crosses a TURN relay (unless -allow-relay); `never` says no
    relay_consent: ConsentFn = never


class _PeekedSource:
    """Hands out a chunk read ahead (for the compression sample) before the rest."""

    def __init__(self, first: bytes | None, rest: ChunkSource) -> None:
        self._first = first
        self._rest = rest

    def read_chunk(self, size: int = MAX_CHUNK_SIZE) -> bytes | None:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        return self._rest.read_chunk(size)


def _first_chunk(source: ChunkSource, size: int) -> bytes:
    while (chunk := source.read_chunk(size)) is None:
        pass
    return chunk


def _worth_compressing(sample: bytes) -> bool:
    if len(sample) < SMALL_INPUT:
        return True  # too small to judge, and too small to cost anything
    return len(ChunkCompressor(1).compress(sample)) < len(sample) * SAMPLE_RATIO


def _base_url(config: Config, ws_url: str) -> str:
    return _normalize_base_url(config.url) if config.url else share_base_url(ws_url)


def _check_name(name: str) -> None:
    from sp2p.fs.names import name_problem  # unicodedata: only when -name is given

    problem = name_problem(name)
    if problem is not None:
        raise UsageError(f"cannot announce -name '{name}': {problem}",
                         hint="give a plain file name, or leave -name out")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # undecodable bytes of a file name arrive as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _is_terminal(stream: BinaryIO | None) -> bool:
    """Is `send -` reading what is typed on a terminal (no pipe, no redirect)?"""
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed meanwhile: not a terminal to type on
        return False


def run_send(opts: SendOptions, term: Terminal) -> int:
    cfg = opts.config
    ws_url = signaling_url(cfg.server)
    if opts.name is not None:
        _check_name(opts.name)
    src: SendSource = inspect_sources(opts.paths, stdin=opts.stdin, stream_name=opts.name)
    if opts.name is not None and src.is_folder:
        raise UsageError("-name renames a single file or a stream, not a folder or several inputs",
                         hint="rename the folder itself, or leave -name out")
    if opts.name and not src.stream_mode and not src.is_folder:
        src = SendSource(
            name=opts.name, size=src.size, mime_type=src.mime_type, is_folder=False,
            stream_mode=False, file_count=0, opener=src.opener, path=src.path,
        )
    if not src.is_folder and not _is_utf8(src.name):  # a folder's planner refuses such names itself
        from sp2p.fs.archive import not_utf8_error

        raise not_utf8_error(opts.paths[0])
    for notice in src.notices:
        term.warn(notice)
    # stdin gets our own stall-aware reader; files and folders read through the planned source
    reader = None if src.stream_mode else src.open()
    source: ChunkSource = (
        StreamSource(opts.stdin) if reader is None else FullChunkSource(reader, what=src.name)
    )
    meta = Metadata(
        name=src.name, size=src.size, type=src.mime_type, is_folder=src.is_folder,
        stream_mode=src.stream_mode, file_count=src.file_count,
    )
    try:
        return _send(opts, term, ws_url, meta, source, src.path)
    finally:
        if reader is not None:
            with contextlib.suppress(OSError):
                reader.close()


def _send(
    opts: SendOptions, term: Terminal, ws_url: str, meta: Metadata, source: ChunkSource, path: str | None
) -> int:
    cfg = opts.config
    seed = generate_seed()
    signal = opts.early.result() if opts.early else SignalClient(ws_url)
    healer: Healer | None = None
    heal = our_heal(cfg)
    try:
        signal.send(Envelope.build(SignalType.HELLO, hello()))
        welcome = wait_welcome(signal)
        notice_update(term, welcome, _base_url(cfg, ws_url))
        preview = meta.to_json()
        file_info = Envelope.build(
            SignalType.FILE_INFO, FileInfo(data=_b64(encrypt_file_info(seed, preview)))
        )
        signal.send(file_info)
        code = format_code(welcome.session_id, seed)
        base = _base_url(cfg, ws_url)
        typed = meta.stream_mode and _is_terminal(opts.stdin)
        show_code(term, base, code, meta, len(opts.paths), typed=typed)
        keys_pair = KeyPair.generate()
        qr = qr_while_waiting(term, share_url(base, code), opts.qr, typed=typed)
        with KeepAlive(signal, file_info), qr:
            peer_type, peer_key, parallel = wait_for_receiver(
                signal, term, keys_pair.public_b64(), meta, cfg, heal=heal, resume=_our_resume(cfg)
            )
        keys = derive_session_keys(
            role=Role.SENDER, seed=seed, session_id=welcome.session_id,
            private=keys_pair.private, sender_pub=keys_pair.public, receiver_pub=peer_key.public,
        )
        peer = PeerInfo(client_type=peer_type, parallel_tcp=peer_key.crypto.parallel_tcp)
        version = spoken(heal, peer_key.crypto.heal)
        resumes = path is not None and negotiated(_our_resume(cfg), peer_key.crypto.resume)
        mode = continuation(version, resumes=resumes, meta=meta)
        channel, healer = meet(
            term, cfg, signal, keys, peer, welcome,
            allow_loopback=opts.allow_loopback, prefer_tcp=meta.size >= PREFER_TCP_THRESHOLD,
            keep_listener=parallel and peer.parallel_tcp, consent=opts.relay_consent,
            heal=version, keep_signaling=keeps_signaling(version, v1_file=mode is Continuation.RESUME),
            keepalive=file_info,
        )  # fmt: skip
    finally:
        if healer is None:
            signal.close()  # v2: signaling ends once the peer-to-peer channel is up
    if healer is None:
        mode = Continuation.NONE
    fc = framed(term, channel, keys, version)
    link: FrameLink = fc
    stack = contextlib.ExitStack()
    try:
        wide = widen(
            term, fc, parallel, peer,
            lambda status: sender_link(fc, keys, meta.size, cfg.parallel, status=status),
        )  # fmt: skip
        link = fc if wide is None else wide
        first: bytes | None = None
        # a whole input smaller than one sample gains nothing from zstd, and without it the
        # receiver never loads zstandard (issue 12)
        compress = cfg.compress > 0 and (meta.stream_mode or meta.size >= SMALL_INPUT)
        # A folder's (or stream's) first chunk says little about the rest: half random files
        # first and text after would go out uncompressed; per chunk, the pump sends what does
        # not shrink as stored frames anyway. So only a single file is sampled: a stream's
        # first byte may come long after the receiver, and until the pump runs no heartbeat
        # goes out (a healing receiver took that silence for a dead path after 8 s).
        if compress and not (meta.is_folder or meta.stream_mode):
            first = _first_chunk(source, chunk_limit(link.message_limit, compressed=True))
            compress = _worth_compressing(first)
            if not compress:
                term.debug("input does not compress; sending it without zstd")
        if compress and not announce_zstd(link.same_host()):
            compress = False
            term.debug("the receiver is on this host: sending without zstd")
        meta = replace(meta, compression="zstd" if compress else "")
        window = ReplayWindow() if mode is Continuation.STREAM else None
        machine = SenderMachine(meta, window=window)
        rest: ChunkSource = _PeekedSource(first, source)
        offset = 0
        if path is not None and resumes and applies(meta):
            offset = send_resume(link, machine, path)
            if offset:
                term.line(resuming_line(offset, meta.size, "there"))
                rest, rest_file = open_rest(path, offset, meta.size)
                stack.callback(close_quietly, rest_file)
        heals = healer.heals if healer is not None and mode is not Continuation.NONE else None
        try:
            return _transfer(link, term, machine, rest, compress, cfg.compress, offset, heals)
        except KeyboardInterrupt:
            if (offset or machine.digest.total_bytes) and path is not None and resumes and applies(meta):
                term.line(RESUME_LATER)  # as the receiver says what it keeps
            raise
        except Sp2pError as exc:
            if healer is None or heals is None or not healable(exc, healer.peer_asked):
                raise
            link.close()  # unblocks a writer stuck on the dead link
            return _heal(healer, term, _Continue(mode, machine, rest, path), cfg.compress, exc, stack)
    finally:
        stack.close()
        link.close()
        if healer is not None:
            healer.close()


@record()
class _Continue:
    """What a reconnect continues: a file through the receiver's partial, or a stream (§2.5–2.6)."""

    mode: Continuation
    machine: SenderMachine
    rest: ChunkSource  #: a stream's source, where the broken link left it
    path: str | None


def _heal(
    healer: Healer, term: Terminal, what: _Continue, level: int, failure: Sp2pError,
    stack: contextlib.ExitStack,
) -> int:
    """Reconnect and continue from what the receiver holds, within the -reconnect budget."""
    deadline = time.monotonic() + healer.budget
    meta = what.machine.metadata
    hint = (
        RESUME_LATER[0].lower() + RESUME_LATER[1:]
        if what.mode is Continuation.RESUME
        else "a folder or a stream cannot resume: a re-run sends it again from the start"
    )
    while True:
        term.line(lost_line(failure, healer.budget))
        try:
            link = relink(term, healer, deadline)
        except ConnectionLost as exc:
            raise gave_up(exc, healer.budget, peer="receiver", hint=hint) from None
        stack.callback(link.close)
        rest: ChunkSource
        try:
            if what.mode is Continuation.RESUME:
                assert what.path is not None
                machine = SenderMachine(meta)
                offset = send_resume(link, machine, what.path)
                if offset:
                    term.line(resuming_line(offset, meta.size, "there"))
                rest, rest_file = open_rest(what.path, offset, meta.size)
                stack.callback(close_quietly, rest_file)
            else:
                machine = what.machine = SenderMachine.continuing(what.machine)
                offset, replay = send_continuation(link, machine)
                term.debug(f"continuing at byte {offset}: {len(replay)} chunks sent again")
                rest = what.rest = Replayed(replay, what.rest)
            return _transfer(link, term, machine, rest, bool(meta.compression), level, offset, healer.heals)
        except Sp2pError as exc:
            if not healable(exc, healer.peer_asked) or time.monotonic() >= deadline:
                raise
            link.close()
            failure = exc


def _our_resume(cfg: Config) -> int:
    return 0 if cfg.no_resume else RESUME_VERSION


def _transfer(
    fc: FrameLink, term: Terminal, machine: SenderMachine, source: ChunkSource, compress: bool,
    level: int, offset: int = 0, heals: Callable[[BaseException], bool] | None = None,
) -> int:
    meta = machine.metadata
    progress = Progress(term, verb="Sending", total=meta.size or None)
    progress.base = offset

    def report(sent: int) -> None:
        progress.update(offset + sent)

    pipe = SendPipeline(fc, machine, level=max(level, 1), progress=report, workers=_workers())
    if heals is not None:
        pipe.heals = heals
    totals = pipe.run(source, compress=compress)
    elapsed = progress.finish(totals.total_bytes)
    term.line()
    term.line("Transfer complete")
    # a resumed run sends only the rest
    term.line(moved_line(totals.total_bytes - offset, elapsed, "sent", fc.transport))
    term.line("Confirmed by receiver")
    return 0


def _workers() -> int:
    return max(2, min(4, os.cpu_count() or 2))


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")

