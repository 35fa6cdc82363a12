"""The receiver: join -> keys -> connect -> transfer -> verified output (client.md §4.4)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from sp2p.config import Config, share_base_url, signaling_url
from sp2p.errors import ConnectionLost, Declined, IntegrityError, PeerCancelled, SignalingError, Sp2pError
from sp2p.flow.connect import PeerInfo
from sp2p.flow.early import EarlySignal
from sp2p.flow.heal import (
    Healer,
    HeldSink,
    gave_up,
    keeps_signaling,
    lost_line,
)
from sp2p.flow.meet import framed, meet, relink, widen
from sp2p.flow.parallel import receiver_link
from sp2p.flow.relay import ConsentFn, never
from sp2p.flow.resume import ResumableFileSink, receive_resume, resuming_line
from sp2p.flow.session import (
    PeerKey,
    notice_update,
    parse_peer_crypto,
    receiver_opening,
    server_error,
    wait_welcome,
)
from sp2p.fs.fsutil import output_dir_problem
from sp2p.fs.partials import remove_stale
from sp2p.link.framed import FrameLink
from sp2p.link.receive_pump import ReceivePipeline
from sp2p.link.sinks import FileSink, FolderSink, StdoutSink, make_sink
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.codes import TransferCode
from sp2p.proto.constants import Role
from sp2p.proto.fileinfo import Preview, decrypt_file_info, parse_preview
from sp2p.proto.heal import Continuation, continuation, spoken
from sp2p.proto.keys import derive_session_keys
from sp2p.proto.messages import Metadata
from sp2p.proto.resume import applies, negotiated
from sp2p.proto.signal import ClientType, SignalType
from sp2p.proto.transfer import ReceiverMachine
from sp2p.record import record
from sp2p.status import ExitStatus
from sp2p.term.progress import Progress
from sp2p.term.ui import Terminal, count, describe, human_size, moved_line

#: asks the user a yes/no question (the CLI's terminal); None means do not ask
Confirm = Callable[[str], bool]


@record()
class ReceiveOptions:
    code: TransferCode
    config: Config
    to_stdout: bool = False
    allow_loopback: bool = False
    #: show the preview and ask before the keys are exchanged (a terminal, no -yes)
    confirm: Confirm | None = None
    #: the signaling connection the CLI opened first; None connects here
    early: EarlySignal | None = None
    #: asked before the data crosses a TURN relay (unless -allow-relay); `never` says no
    relay_consent: ConsentFn = never


def run_receive(opts: ReceiveOptions, term: Terminal) -> int:
    cfg = opts.config
    outdir = Path(cfg.output)
    problem = None if opts.to_stdout else output_dir_problem(outdir)
    if problem is not None:
        raise problem
    if not opts.to_stdout:
        for gone in remove_stale(outdir):
            term.line(
                f"Removed an interrupted download of {term.peer_text(gone.name)} "
                f"({human_size(gone.size)}, untouched for over 7 days)"
            )
    code = opts.code
    signal = opts.early.result() if opts.early else SignalClient(signaling_url(cfg.server))
    healer: Healer | None = None
    try:
        opening = opts.early.opening if opts.early else None  # sent as the socket opened
        if opening is None:
            opening = receiver_opening(code.session_id, cfg, to_stdout=opts.to_stdout,
                                       key_now=opts.confirm is None)
            for env in opening.messages:
                signal.send(env)
        # Go receivers send their key at once; it is relayed only once the join succeeded
        keys_pair, crypto, resume, heal = opening.keys, opening.crypto, opening.resume, opening.heal
        parallel = cfg.parallel != 1
        welcome = wait_welcome(signal)
        notice_update(term, welcome, share_base_url(signal.url))
        term.line("Connected to the sender's session")
        preview: Preview | None = None
        if opts.confirm is not None:
            # the sender waits for our key, so it waits while the user decides
            preview = _show_offer(term, cfg, code, welcome.peer_client_type)
            if not opts.confirm("Receive it?"):
                with contextlib.suppress(SignalingError):
                    signal.send_type(SignalType.DECLINE)
                term.line("Declined; the sender has been told")
                return ExitStatus.TRANSFER
            signal.send(crypto)
        sender = _wait_for_sender_key(signal)
        sender_key, prefer_tcp = sender.public, sender.crypto.prefer_tcp
        keys = derive_session_keys(
            role=Role.RECEIVER, seed=code.seed, session_id=code.session_id,
            private=keys_pair.private, sender_pub=sender_key, receiver_pub=keys_pair.public,
        )
        peer = PeerInfo(
            client_type=welcome.peer_client_type or ClientType.CLI.value,
            prefer_tcp=prefer_tcp,
            parallel_tcp=sender.crypto.parallel_tcp,
        )
        resumable = negotiated(resume, sender.crypto.resume)
        version = spoken(heal, sender.crypto.heal)
        channel, healer = meet(
            term, cfg, signal, keys, peer, welcome,
            allow_loopback=opts.allow_loopback, prefer_tcp=prefer_tcp,
            keep_listener=parallel and peer.parallel_tcp, consent=opts.relay_consent,
            heal=version, keep_signaling=keeps_signaling(version, v1_file=resumable),
        )  # fmt: skip
    finally:
        if healer is None:
            signal.close()
    fc = framed(term, channel, keys, version)
    links: list[FrameLink] = [fc]
    attempt = _Attempt(heal=version if healer is not None else 0, resumable=resumable, healer=healer)
    try:
        wide = widen(
            term, fc, parallel, peer, lambda status: receiver_link(fc, keys, cfg.parallel, status=status)
        )
        if wide is not None:
            links.append(wide)
        recheck = _recheck(term, preview, opts.confirm)
        try:
            return _transfer(links[-1], term, outdir, opts.to_stdout, recheck, attempt)
        except Sp2pError as exc:
            if healer is None or not attempt.heals(exc):
                raise
            return _heal(healer, links, term, outdir, opts.to_stdout, attempt, exc)
    except (Sp2pError, KeyboardInterrupt):  # Ctrl-C keeps a partial too: say so
        _say_what_is_kept(term, attempt.sink, outdir, resumable)
        raise
    finally:
        if attempt.held is not None:
            attempt.held.close()  # removes what a given-up folder or stream left (no-op once committed)
        for link in links:
            link.close()
        if healer is not None:
            healer.close()


@record()
class _Attempt:
    """Where the transfer got to, across reconnects: what a reconnect can continue."""

    heal: int  #: the heal version both speak (0: no reconnect)
    resumable: bool
    healer: Healer | None = None
    sink: object = None
    pipe: ReceivePipeline | None = None
    #: a folder's or stream's output, kept across reconnects (§2.6)
    held: HeldSink | None = None
    #: the machine of a reconnected link (continues the broken one)
    machine: ReceiverMachine | None = None

    def continuation(self) -> Continuation:
        meta = self.pipe.machine.metadata if self.pipe is not None else None
        if meta is None:  # before Metadata anything may heal
            return Continuation.STREAM if self.heal else Continuation.NONE
        return continuation(self.heal, resumes=self.resumable, meta=meta)

    def heals(self, exc: BaseException) -> bool:
        healer = self.healer
        return healer is not None and self.continuation() is not Continuation.NONE and healer.heals(exc)

    def next_link(self) -> int:
        """Ready the next attempt once the link broke; returns the bytes a stream already wrote."""
        previous = self.pipe.settle() if self.pipe is not None else self.first_machine()
        self.machine = ReceiverMachine.continuing(previous)
        self.pipe = None
        return self.machine.digest.total_bytes

    def first_machine(self) -> ReceiverMachine:
        return ReceiverMachine(resume=self.resumable, heal=self.heal)


def _heal(
    healer: Healer, links: list[FrameLink], term: Terminal, outdir: Path, to_stdout: bool,
    attempt: _Attempt, failure: Sp2pError,
) -> int:
    """Reconnect and continue until done, a failure that cannot heal, or the -reconnect budget is spent."""
    deadline = time.monotonic() + healer.budget
    while True:
        term.line(lost_line(failure, healer.budget))
        for link in links:
            link.close()
        written = attempt.next_link()
        try:
            links.append(relink(term, healer, deadline))
        except ConnectionLost as exc:
            # what is kept is said once the error is out
            raise gave_up(exc, healer.budget, peer="sender") from None
        try:
            # the machine checks that the sender announces the same transfer again
            return _transfer(links[-1], term, outdir, to_stdout, lambda m: None, attempt, written)
        except Sp2pError as exc:
            if not attempt.heals(exc) or time.monotonic() >= deadline:
                raise
            failure = exc


def _wait_for_sender_key(signal: SignalClient) -> PeerKey:
    try:
        while True:
            env = signal.wait_for({SignalType.CRYPTO, SignalType.PEER_LEFT, SignalType.ERROR})
            if env.type == SignalType.CRYPTO:
                return parse_peer_crypto(env)
            if env.type == SignalType.PEER_LEFT:  # interrupted or killed: exit 6, as the sender says of us
                raise PeerCancelled("the sender left before the transfer started")
            raise server_error(env)
    except SignalClosed as exc:
        raise SignalingError(f"lost the signaling server: {exc}") from exc


def _show_offer(term: Terminal, cfg: Config, code: TransferCode, sender_type: str) -> Preview | None:
    """Fetch, decrypt and show the sender's preview; say so when there is none (C16)."""
    from sp2p.net.preview import fetch_file_info

    who = "a browser" if sender_type == ClientType.BROWSER else "a CLI"
    blob = fetch_file_info(share_base_url(signaling_url(cfg.server)), code.session_id)
    preview: Preview | None = None
    if blob is not None:
        try:
            preview = parse_preview(decrypt_file_info(code.seed, blob))
        except (IntegrityError, ValueError):
            preview = None
    if preview is None:
        term.line(f"No preview of the offer from {who} (its client or server does not provide one)")
        return None
    term.line(f"Offer: {_offer_text(term, preview)}, from {who}")
    return preview


def _offer_text(term: Terminal, p: Preview) -> str:
    size = "size not known in advance" if p.stream else human_size(p.size)
    files = f", {count(p.file_count, 'file')}" if p.file_count else ""
    kind = "folder " if p.is_folder else ""  # the name alone reads like a file's
    return f"{kind}{term.peer_text(p.name)}, {size}{files}"


def _recheck(term: Terminal, preview: Preview | None, confirm: Confirm | None) -> Callable[[Metadata], None]:
    """The in-stream metadata is what counts; if it differs from the preview, ask again (C16)."""

    def check(meta: Metadata) -> None:
        if confirm is None or preview is None:
            return
        if meta.name == preview.name and (meta.stream_mode or meta.size == preview.size):
            return
        what = describe(term.peer_text(meta.name), meta.size, meta.file_count, stream=meta.stream_mode)
        term.line(f"The sender now offers {what}, not what the preview showed")
        if not confirm("Receive it anyway?"):
            raise Declined("the receiver declined the changed offer")

    return check


def _transfer(
    fc: FrameLink, term: Terminal, outdir: Path, to_stdout: bool,
    recheck: Callable[[Metadata], None],
    attempt: _Attempt,
    written: int = 0,
) -> int:
    resumable = attempt.resumable
    pipe = ReceivePipeline(fc, machine=attempt.machine or attempt.first_machine())
    pipe.heals = attempt.heals
    pipe.resume_handshake = receive_resume
    attempt.pipe = pipe
    progress: Progress | None = None
    sink: FileSink | FolderSink | StdoutSink | ResumableFileSink | HeldSink | None = None
    offset = written  # a stream continues after what it wrote; a file resumes where on_start says

    def on_metadata(meta: Metadata) -> None:
        nonlocal progress
        recheck(meta)
        what = describe(term.peer_text(meta.name), meta.size, meta.file_count, stream=meta.stream_mode)
        term.line(f"Receiving: {what}")
        progress = Progress(term, verb="Receiving", total=meta.size or None)
        pipe.progress = lambda n: progress.update(offset + n) if progress is not None else None

    def on_start(at: int, size: int) -> None:
        nonlocal offset
        offset = at
        if at and progress is not None:
            progress.base = at
            term.line(resuming_line(at, size, "here"))

    def factory(meta: Metadata) -> FileSink | FolderSink | StdoutSink | ResumableFileSink | HeldSink:
        nonlocal sink
        if resumable and applies(meta) and not to_stdout:
            sink = ResumableFileSink(outdir, meta, on_start)
        elif attempt.held is not None:
            sink = attempt.held  # the same transfer (the machine checked) continues into it
        else:
            sink = make_sink(meta, outdir=outdir, to_stdout=to_stdout)
            if continuation(attempt.heal, resumes=resumable, meta=meta) is Continuation.STREAM:
                sink = attempt.held = HeldSink(sink)
        attempt.sink = sink
        return sink

    try:
        totals = pipe.run(factory, on_metadata=on_metadata)
    except BaseException:
        if progress is not None:
            progress.abort()
        raise
    elapsed = progress.finish(totals.total_bytes) if progress is not None else 0.0
    term.line()
    term.line("Transfer complete")
    # a resumed run receives only the rest
    term.line(moved_line(totals.total_bytes - offset, elapsed, "received", fc.transport))
    if sink is not None:
        for path in sink.saved:
            term.line(f"Saved to: {term.peer_text(str(path), max_len=400)}")
    return 0


def _say_what_is_kept(term: Terminal, sink: object, outdir: Path, resumable: bool) -> None:
    """After a failure: whether a re-run can resume (docs/protocol-extensions.md §1)."""
    if isinstance(sink, HeldSink):
        sink = sink.inner
    if isinstance(sink, ResumableFileSink):
        if sink.kept:
            term.line(
                f"Kept {human_size(sink.kept)} of the file in {outdir}: run the same send again "
                "and receive into this folder to resume"
            )
    elif resumable and isinstance(sink, FileSink | FolderSink):
        term.line("Folders and streams cannot resume: a re-run starts from zero")
