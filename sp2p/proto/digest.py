"""What both transfer machines count over the plaintext, and the one Done-vs-Complete check.

SHA-256, bytes and chunks of the data stream (client.md §3.5): the sender's go into Done,
the receiver's into Complete, and `totals_mismatch` compares them. A resume starts the
digest from a hashed prefix; a heal rewinds it to a chunk boundary (a DigestState from the
replay window, sp2p.proto.heal).
"""

from __future__ import annotations

from sp2p.errors import LocalProtocolError, VerificationError
from sp2p.proto.heal import DigestState, Hasher
from sp2p.proto.messages import Totals
from sp2p.proto.sha import sha256_stream


class StreamDigest:
    """SHA-256, byte and chunk accounting over the plaintext stream."""

    def __init__(self) -> None:
        self._sha: Hasher = sha256_stream()
        self.total_bytes = 0
        self.chunk_count = 0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.total_bytes += len(chunk)
        self.chunk_count += 1

    def totals(self) -> Totals:
        return Totals(self.total_bytes, self.chunk_count, self._sha.hexdigest())

    def continue_from(self, prefix: Hasher, length: int) -> None:
        """Resume: the stream starts with `length` bytes already hashed into `prefix`."""
        if self.total_bytes:
            raise LocalProtocolError("digest: resume after data")
        self._sha = prefix.copy()
        self.total_bytes = length

    def snapshot(self) -> DigestState:
        return DigestState(self._sha.copy(), self.total_bytes, self.chunk_count)

    def restore(self, state: DigestState) -> None:
        """Heal: back to a chunk boundary (the sender re-sends from there)."""
        self._sha = state.sha.copy()
        self.total_bytes = state.total_bytes
        self.chunk_count = state.chunk_count


def totals_mismatch(sent: Totals, received: Totals) -> VerificationError | None:
    """The one comparison of Done against Complete (texts as Go's receiver words them)."""
    if (sent.total_bytes, sent.chunk_count) != (received.total_bytes, received.chunk_count):
        return VerificationError(
            f"verification mismatch: expected {sent.total_bytes} bytes/{sent.chunk_count} chunks, "
            f"got {received.total_bytes}/{received.chunk_count}"
        )
    if sent.sha256 != received.sha256:
        return VerificationError(
            f"integrity check failed: sender SHA-256 {sent.sha256}, receiver SHA-256 {received.sha256}"
        )
    return None
