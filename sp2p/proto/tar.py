"""Tar (ustar + PAX) encoding and an incremental, strict tar parser (client.md §3.8).

Length (~540 lines): one format; the writer and the strict parser share the layout and field rules
below, and each check in the parser answers one of the encoder's choices.

Byte layout. An archive is a sequence of 512-byte blocks:

    [PAX 'x' header block][PAX records, zero-padded to 512]   only when needed
    ustar header block                                         one per member
    member data, zero-padded to a multiple of 512              regular files only
    ...
    two zero blocks (1024 bytes)                               end of archive, no record padding

ustar header block (offsets in bytes):

    0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]  136 mtime[12]
    148 chksum[8]  156 typeflag[1]  157 linkname[100]  257 magic[6] "ustar\\0"
    263 version[2] "00"  265 uname[32]  297 gname[32]  329 devmajor[8]  337 devminor[8]
    345 prefix[155]  500 pad[12]

Numeric fields are zero-padded octal ending in NUL (base-256 is accepted when read);
chksum is the unsigned byte sum of the block with the chksum field read as spaces,
written as six octal digits, NUL, space. A PAX record is ``"<len> <key>=<value>\\n"``
where <len> counts the whole record. Go's writer switches to PAX for a name that does
not fit ustar (too long for a prefix/name split, or not ASCII) and for sizes of 8 GiB
and more; we do the same, so Go's ``archive/tar`` reads what we write.

Nothing here opens files: `encode_member_header` returns bytes and `TarParser` takes
bytes and returns events (the h11 shape: ``receive_data`` then ``next_event`` until
``NEED_DATA``). The parser checks the *format* (checksums, numeric fields, PAX records,
end-of-archive marker, trailing data); *policy* (which member kinds and names are
acceptable) belongs to the extractor in `sp2p.fs.extract`.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from sp2p.errors import LocalProtocolError, RemoteProtocolError
from sp2p.proto.receivebuffer import NEED_DATA as NEED_DATA
from sp2p.proto.receivebuffer import NeedData, ReceiveBuffer
from sp2p.record import record

BLOCK: Final = 512
END_OF_ARCHIVE: Final = bytes(2 * BLOCK)
#: largest value an 11-digit octal field (size, mtime) can hold: 8 GiB - 1
MAX_OCTAL_11: Final = 8**11 - 1
#: name of the header block that carries PAX records (what Python's tarfile writes too)
_PAX_HEADER_NAME: Final = b"././@PaxHeader"
_USTAR_MAGIC: Final = b"ustar\x0000"
_ZERO_BLOCK: Final = bytes(BLOCK)

#: default cap on the data of one PAX or GNU long-name header; names are at most 4096 bytes
DEFAULT_MAX_EXTENDED: Final = 64 * 1024
#: default cap on zero bytes tolerated after the end marker (Python's tarfile pads to 10240)
DEFAULT_MAX_TRAILING_ZEROS: Final = 1024 * 1024
#: extended headers (PAX 'x', GNU 'L'/'K') allowed in a row before a real member
_MAX_EXTENDED_IN_A_ROW: Final = 4


class MemberKind(enum.Enum):
    FILE = "regular file"
    DIRECTORY = "directory"
    SYMLINK = "symbolic link"
    HARDLINK = "hard link"
    CHAR_DEVICE = "character device"
    BLOCK_DEVICE = "block device"
    FIFO = "FIFO"
    CONTIGUOUS = "contiguous file"
    SPARSE = "sparse file"
    OTHER = "special member"


_KIND_BY_TYPEFLAG: Final[dict[bytes, MemberKind]] = {
    b"0": MemberKind.FILE,
    b"\x00": MemberKind.FILE,
    b"1": MemberKind.HARDLINK,
    b"2": MemberKind.SYMLINK,
    b"3": MemberKind.CHAR_DEVICE,
    b"4": MemberKind.BLOCK_DEVICE,
    b"5": MemberKind.DIRECTORY,
    b"6": MemberKind.FIFO,
    b"7": MemberKind.CONTIGUOUS,
    b"S": MemberKind.SPARSE,
}
#: kinds whose size field must be zero (they carry no data); Go's reader ignores the field,
#: we reject a non-zero one so no two readers can disagree about where the next header is
_HEADER_ONLY: Final = frozenset(
    {
        MemberKind.HARDLINK,
        MemberKind.SYMLINK,
        MemberKind.CHAR_DEVICE,
        MemberKind.BLOCK_DEVICE,
        MemberKind.DIRECTORY,
        MemberKind.FIFO,
    }
)


# ---------------------------------------------------------------------------- encoding


def padding(size: int) -> bytes:
    """Zero bytes that pad `size` data bytes up to a whole block."""
    return bytes(-size % BLOCK)


def padded_size(size: int) -> int:
    return size + (-size % BLOCK)


def _octal(value: int, width: int) -> bytes:
    """`width`-1 zero-padded octal digits and a NUL, as Go and GNU tar write them."""
    digits = b"%o" % value
    if value < 0 or len(digits) > width - 1:
        raise ValueError(f"{value} does not fit a {width}-byte tar field")
    return digits.rjust(width - 1, b"0") + b"\x00"


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fitting ustar's 155 + 100 bytes, or None."""
    if len(name) <= 100:
        return b"", name
    # the prefix is at most 155 bytes, so the separating slash is at index <= 155
    cut = name.rfind(b"/", 0, 156)
    if cut <= 0 or len(name) - cut - 1 > 100 or cut == len(name) - 1:
        return None
    return name[:cut], name[cut + 1 :]


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:  # the length counts its own digits
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _ustar_block(
    name: bytes, prefix: bytes, *, typeflag: bytes, size: int, mode: int, mtime: int
) -> bytes:
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)  # uid: owners are never restored, so we don't leak them
    block[116:124] = _octal(0, 8)  # gid
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = _USTAR_MAGIC
    block[329:337] = _octal(0, 8)  # devmajor
    block[337:345] = _octal(0, 8)  # devminor
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def encode_member_header(name: str, *, is_dir: bool, size: int, mode: int, mtime: int) -> bytes:
    """Header block(s) for one directory or regular-file member.

    Args:
        name: archive path with ``/`` separators, no trailing slash.
        is_dir: typeflag ``5`` (size must be 0) instead of ``0``.
        size: data length in bytes (a PAX ``size`` record is added from 8 GiB on).
        mode: permission bits; anything above 0o777 is dropped (no setuid/sticky).
        mtime: whole seconds since the epoch, clamped to what ustar holds (1970..2242).

    Returns:
        The ustar header, preceded by a PAX extended header when the name or size needs
        one. The caller follows it with `size` data bytes and `padding(size)`.
    """
    if is_dir and size:
        raise ValueError("a directory member has no data")
    if size < 0:
        raise ValueError("negative size")
    raw = name.encode("utf-8")
    pax: list[bytes] = []
    split = _split_ustar_name(raw) if raw.isascii() else None
    if split is None:
        pax.append(_pax_record("path", name))
        # a readable ASCII stand-in for readers that ignore PAX (Go does the same)
        stand_in = raw.decode("ascii", "replace").replace("\ufffd", "_").encode()[-100:]
        split = (b"", stand_in.lstrip(b"/") or b"_")
    ustar_size = size
    if size > MAX_OCTAL_11:
        pax.append(_pax_record("size", str(size)))
        ustar_size = 0
    mtime = min(max(mtime, 0), MAX_OCTAL_11)
    typeflag = b"5" if is_dir else b"0"
    header = _ustar_block(
        split[1], split[0], typeflag=typeflag, size=ustar_size, mode=mode & 0o777, mtime=mtime
    )
    if not pax:
        return header
    records = b"".join(pax)
    pax_header = _ustar_block(
        _PAX_HEADER_NAME, b"", typeflag=b"x", size=len(records), mode=0o644, mtime=mtime
    )
    return pax_header + records + padding(len(records)) + header


# ---------------------------------------------------------------------------- parsing

# The parser's events: one small frozen record each, matched by type (the same shape as
# proto/transfer.py's receiver events, by design).


@record(frozen=True)
class MemberHeader:
    """Start of a member; its data follows as MemberData events, then MemberEnd."""

    name: str
    kind: MemberKind
    typeflag: bytes
    size: int
    mode: int
    mtime: int
    linkname: str


@record(frozen=True)
class MemberData:
    data: bytes


@record(frozen=True)
class MemberEnd:
    pass


@record(frozen=True)
class ArchiveEnd:
    """Both zero blocks of the end marker were read."""


TarEvent = MemberHeader | MemberData | MemberEnd | ArchiveEnd


class _State(enum.Enum):
    HEADER = enum.auto()  # expecting a header block (or the first zero block)
    EXTENDED = enum.auto()  # collecting the data of a PAX / GNU long-name header
    DATA = enum.auto()  # passing member data through
    PADDING = enum.auto()  # skipping the zero padding after member data
    SECOND_ZERO = enum.auto()  # one zero block seen; the next must be zero too
    END = enum.auto()  # end marker seen; only zero bytes may follow
    FAILED = enum.auto()


_PAX_MTIME = re.compile(r"-?[0-9]{1,20}(\.[0-9]{0,20})?")
_PAX_SIZE = re.compile(r"[0-9]{1,20}")


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"invalid tar archive: {message}")


def _parse_number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        if field[0] == 0xFF:
            raise _fail(f"negative {what} field")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if not re.fullmatch(rb"[0-7]+", text):
        raise _fail(f"malformed {what} field")
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    stored = _parse_number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    # some historic writers summed signed chars; readers accept both
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b >= 0x80)
    return stored in (unsigned, signed)


def _cstring(field: bytes) -> bytes:
    return field.split(b"\x00", 1)[0]


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what} is not valid UTF-8") from None


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        if space < 0 or not data[pos:space].isdigit():
            raise _fail("malformed PAX record length")
        length = int(data[pos:space])
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise _fail("malformed PAX record")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise _fail("malformed PAX record")
        records[_utf8(key, "PAX key")] = _utf8(value, "PAX value")
        pos = end
    return records


class TarParser:
    """Incremental tar reader; feed it bytes split anywhere, pull events.

    ``receive_data(b"")`` signals end of input; if the end-of-archive marker has not been
    seen then, `next_event` raises RemoteProtocolError (a truncated stream). Every format
    problem raises RemoteProtocolError, after which the parser stays failed.
    """

    def __init__(
        self,
        *,
        max_extended: int = DEFAULT_MAX_EXTENDED,
        max_trailing_zeros: int = DEFAULT_MAX_TRAILING_ZEROS,
    ) -> None:
        self._max_extended = max_extended
        self._max_trailing_zeros = max_trailing_zeros
        self._buf = ReceiveBuffer()
        self._eof = False
        self._state = _State.HEADER
        self._remaining = 0  # data or padding bytes left in the current member
        self._extended_type = b""
        self._extended_buf = bytearray()
        self._extended_count = 0
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._trailing = 0
        self._end_reported = False
        self._data_size = 0
        self._in_member = False
        self.offset = 0  #: stream bytes consumed so far

    @property
    def finished(self) -> bool:
        """True once the end-of-archive marker has been read."""
        return self._state is _State.END

    def receive_data(self, data: bytes) -> None:
        """Add input; ``b""`` means end of input."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data after end of input")
            return
        if not data:
            self._eof = True
            return
        # bytes() copies anything mutable, since large pieces are kept by reference
        self._buf += bytes(data)

    def next_event(self) -> TarEvent | NeedData:
        """The next event, or NEED_DATA until more input arrives.

        Raises:
            RemoteProtocolError: the bytes are not a well-formed tar archive.
        """
        if self._state is _State.FAILED:
            raise _fail("parser already failed")
        try:
            return self._step()
        except RemoteProtocolError:
            self._state = _State.FAILED
            raise

    # -- buffer helpers

    def _take(self, n: int) -> bytes:
        """Exactly n bytes (caller checked availability)."""
        self.offset += n
        return bytes(self._buf.extract(n))

    def _take_upto(self, n: int) -> bytes:
        piece = bytes(self._buf.extract_at_most(n))
        self.offset += len(piece)
        return piece

    # -- the state machine

    def _step(self) -> TarEvent | NeedData:
        while True:
            state = self._state
            if state is _State.END:
                return self._step_end()
            if state is _State.DATA:
                if self._remaining == 0:
                    self._state = _State.PADDING
                    self._remaining = -self._data_size % BLOCK
                    continue
                if not self._buf:
                    return self._need()
                piece = self._take_upto(self._remaining)
                self._remaining -= len(piece)
                return MemberData(piece)
            if state is _State.PADDING:
                if self._remaining:
                    if not self._buf:
                        return self._need()
                    # padding content is not checked, as in Go
                    self._remaining -= len(self._take_upto(self._remaining))
                    continue
                self._state = _State.HEADER
                if self._in_member:
                    self._in_member = False
                    return MemberEnd()
                continue
            if state is _State.EXTENDED:
                if self._remaining:
                    if not self._buf:
                        return self._need()
                    piece = self._take_upto(self._remaining)
                    self._extended_buf += piece
                    self._remaining -= len(piece)
                    continue
                self._finish_extended()
                continue
            # HEADER or SECOND_ZERO: both read one whole block
            if len(self._buf) < BLOCK:
                return self._need()
            block = self._take(BLOCK)
            if state is _State.SECOND_ZERO:
                if block != _ZERO_BLOCK:
                    raise _fail("a single zero block inside the archive")
                if self._pax or self._long_name is not None or self._long_link is not None:
                    raise _fail("extended header without a member")
                self._state = _State.END
                continue
            if block == _ZERO_BLOCK:
                self._state = _State.SECOND_ZERO
                continue
            event = self._header(block)
            if event is not None:
                return event

    def _need(self) -> NeedData:
        if self._eof:
            if self._state is _State.END:
                return NEED_DATA
            raise _fail("the stream ended before the end-of-archive marker (truncated)")
        return NEED_DATA

    def _step_end(self) -> TarEvent | NeedData:
        if not self._end_reported:
            self._end_reported = True
            return ArchiveEnd()
        while self._buf:
            piece = self._take_upto(len(self._buf))
            if piece.count(0) != len(piece):
                raise _fail("data after the end-of-archive marker")
            self._trailing += len(piece)
            if self._trailing > self._max_trailing_zeros:
                raise _fail("too much padding after the end-of-archive marker")
        return NEED_DATA

    def _header(self, block: bytes) -> MemberHeader | None:
        if not _checksum_ok(block):
            raise _fail(f"header checksum error at offset {self.offset - BLOCK}")
        typeflag = block[156:157]
        size = _parse_number(block[124:136], "size")
        if typeflag in (b"x", b"L", b"K"):
            self._extended_count += 1
            if self._extended_count > _MAX_EXTENDED_IN_A_ROW:
                raise _fail("too many extended headers in a row")
            if size > self._max_extended:
                raise _fail(f"extended header of {size} bytes is too large")
            self._extended_type = typeflag
            self._extended_buf = bytearray()
            self._remaining = size
            self._state = _State.EXTENDED
            return None
        if typeflag == b"g":
            raise _fail("PAX global headers are not supported")
        return self._member(block, typeflag, size)

    def _finish_extended(self) -> None:
        data = bytes(self._extended_buf)
        self._extended_buf = bytearray()
        if self._extended_type == b"x":
            for key, value in _parse_pax(data).items():
                if value:
                    self._pax[key] = value
                else:  # an empty value cancels an earlier record (POSIX)
                    self._pax.pop(key, None)
        elif self._extended_type == b"L":
            self._long_name = _utf8(_cstring(data), "long name")
        else:
            self._long_link = _utf8(_cstring(data), "long link name")
        # skip the padding of the extended header's data, then read the next header
        self._remaining = -len(data) % BLOCK
        self._state = _State.PADDING

    def _member(self, block: bytes, typeflag: bytes, size: int) -> MemberHeader:
        magic = block[257:265]
        name = _cstring(block[0:100])
        if magic[:6] == b"ustar\x00":  # POSIX ustar has a prefix field; GNU reuses that area
            prefix = _cstring(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        pax, self._pax = self._pax, {}
        long_name, self._long_name = self._long_name, None
        long_link, self._long_link = self._long_link, None
        self._extended_count = 0
        text_name = pax.get("path") or long_name or _utf8(name, "member name")
        linkname = pax.get("linkpath") or long_link or _utf8(_cstring(block[157:257]), "link")
        kind = _KIND_BY_TYPEFLAG.get(typeflag, MemberKind.OTHER)
        if typeflag == b"\x00" and text_name.endswith("/"):
            kind = MemberKind.DIRECTORY  # pre-POSIX convention, as Go reads it
        if any(key.startswith("GNU.sparse.") for key in pax):
            kind = MemberKind.SPARSE
        if "size" in pax:
            if not _PAX_SIZE.fullmatch(pax["size"]):
                raise _fail("malformed PAX size")
            size = int(pax["size"])
        mtime = _parse_number(block[136:148], "mtime")
        if "mtime" in pax:
            if not _PAX_MTIME.fullmatch(pax["mtime"]):
                raise _fail("malformed PAX mtime")
            mtime = int(pax["mtime"].split(".", 1)[0])
        mode = _parse_number(block[100:108], "mode")
        if kind in _HEADER_ONLY and size:
            raise _fail(f"{kind.value} member with a non-zero size")
        self._data_size = size
        self._remaining = size
        self._state = _State.DATA
        self._in_member = True
        return MemberHeader(
            name=text_name,
            kind=kind,
            typeflag=typeflag,
            size=size,
            mode=mode,
            mtime=mtime,
            linkname=linkname,
        )
