"""Portable naming rules for everything a peer names on our disk (pure functions).

One policy serves single-file receives (`safe_name`) and tar members
(`member_components`), so a folder received on Linux can later be copied to Windows
(security-cases T4, T5, T11):

* structure that could escape the target is *rejected* (absolute paths, ``..``,
  backslashes, drive letters) — for tar members the whole archive is refused;
* characters and names a portable file system cannot hold are *sanitised*
  deterministically: controls, format/bidi code points, ``<>:"|?*``, Windows device
  names (``CON``, ``com1.txt``, ``COM¹``, ``CONIN$``), trailing dots and spaces;
* `collision_key` folds case and Unicode normalisation, so ``README``/``readme`` and
  ``é``/``e\\u0301`` count as the same name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Final

MAX_COMPONENT_BYTES: Final = 255
MAX_PATH_BYTES: Final = 4096
MAX_DEPTH: Final = 100
FALLBACK_FILE_NAME: Final = "received-file"
#: prefix of our own temp/staging entries; peer names never start with it (stale cleanup)
RESERVED_PREFIX: Final = ".sp2p-"
#: `numbered_names` tries the plain name and then this many suffixes
MAX_RENAME_ATTEMPTS: Final = 1000

_FORBIDDEN_CHARS: Final = frozenset('<>:"|?*/\\')
#: categories that must never reach a file name: controls, format (bidi, zero-width),
#: line/paragraph separators, surrogates (from JSON "\\ud800"), unassigned
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_DEVICE_NAMES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
)
_DRIVE: Final = re.compile(r"[A-Za-z]:")


class UnsafeNameError(ValueError):
    """A name whose structure is unsafe (escapes, absolute, limits); the message says why."""


def _clean_char(ch: str) -> str:
    if ch in _FORBIDDEN_CHARS or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
        return "_"
    return ch


def is_device_name(name: str) -> bool:
    """True for a name Windows maps to a device (``nul.tar.gz``, ``COM1 .txt`` …)."""
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _DEVICE_NAMES


def _truncate_utf8(text: str, limit: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def split_ext(name: str) -> tuple[str, str]:
    """(base, ext) with ext from the last dot, Go style: ``a.tar.gz`` → (``a.tar``, ``.gz``).

    A leading dot is part of the base (``.bashrc`` has no extension).
    """
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def sanitize_component(name: str, *, fallback: str = "_") -> str:
    """A single portable path component derived deterministically from `name`.

    Never empty, never ``.`` or ``..``, no separators, at most 255 UTF-8 bytes (the
    extension is kept when the name has to be shortened).
    """
    cleaned = "".join(_clean_char(ch) for ch in unicodedata.normalize("NFC", name))
    cleaned = cleaned.rstrip(" .")  # Windows drops trailing dots and spaces
    if not cleaned or cleaned in (".", ".."):
        return fallback
    if is_device_name(cleaned):
        cleaned = "_" + cleaned
    if cleaned.startswith(RESERVED_PREFIX):
        cleaned = "_" + cleaned
    if len(cleaned.encode("utf-8")) > MAX_COMPONENT_BYTES:
        base, ext = split_ext(cleaned)
        if len(ext.encode("utf-8")) > 32:
            base, ext = cleaned, ""
        cleaned = _truncate_utf8(base, MAX_COMPONENT_BYTES - len(ext.encode("utf-8"))) + ext
        cleaned = cleaned.rstrip(" .") or fallback
    return cleaned


def safe_name(name: str | bytes, *, fallback: str = FALLBACK_FILE_NAME) -> str:
    """The file name to save a peer-announced single file under (T1, T4, T11).

    Takes the last path component (``/`` and ``\\`` both separate, so ``C:\\x``,
    ``..\\x`` and ``a/../../x`` all become ``x``), then `sanitize_component`.
    Empty, ``.`` and ``..`` become `fallback` (``received-file``).
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    last = re.split(r"[/\\]", name.rstrip("/\\"))[-1]
    if last in ("", ".", ".."):
        return fallback
    return sanitize_component(last, fallback=fallback)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be announced as given (``send -name``), or None. Receivers would
    rename a blank name, cut a path to its last component, refuse ``.``/``..`` and replace
    control characters: better said to the sender than found at the other end."""
    if not name.strip():
        return "it is blank"
    if "/" in name or "\\" in name:
        return "it is a path, not a file name"
    if name in (".", ".."):
        return "it is not a file name"
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        return "it contains control or undecodable characters"
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        return f"it is longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def member_components(name: str) -> tuple[str, ...]:
    """Validate a tar member name and return its sanitised path components (T5, T11, T12).

    ``./`` components, empty components and a trailing slash are dropped. The result
    may be empty (the member names the archive root, e.g. ``./``).

    Raises:
        UnsafeNameError: absolute name, ``..`` component, backslash, drive letter,
            NUL, name over 4096 bytes, component over 255 bytes, depth over 100.
    """
    raw_len = len(name.encode("utf-8", "surrogatepass"))
    if raw_len > MAX_PATH_BYTES:
        raise UnsafeNameError(f"name longer than {MAX_PATH_BYTES} bytes")
    if "\x00" in name:
        raise UnsafeNameError("name contains a NUL byte")
    if "\\" in name:
        raise UnsafeNameError("name contains a backslash")
    if name.startswith("/"):
        raise UnsafeNameError("absolute name")
    if _DRIVE.match(name):
        raise UnsafeNameError("name starts with a drive letter")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeNameError("name contains a '..' component")
    if len(parts) > MAX_DEPTH:
        raise UnsafeNameError(f"name deeper than {MAX_DEPTH} levels")
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise UnsafeNameError(f"name component longer than {MAX_COMPONENT_BYTES} bytes")
    return tuple(sanitize_component(p) for p in parts)


def collision_key(component: str) -> str:
    """Key under which two names clash on a case-insensitive, normalising file system."""
    folded = unicodedata.normalize("NFD", component).casefold()
    return unicodedata.normalize("NFC", folded)


def numbered_names(name: str, *, split_extension: bool = True) -> Iterator[str]:
    """``name``, then ``base (1).ext`` … ``base (1000).ext`` (directories: ``name (n)``).

    Candidates stay within 255 bytes by shortening the base.
    """
    yield name
    base, ext = split_ext(name) if split_extension else (name, "")
    for n in range(1, MAX_RENAME_ATTEMPTS + 1):
        suffix = f" ({n}){ext}"
        room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
        yield _truncate_utf8(base, room) + suffix
