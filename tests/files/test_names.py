"""sp2p.fs.names: safe single-file names (T1, T4), portable components (T11), member paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.fs.names import (
    FALLBACK_FILE_NAME,
    UnsafeNameError,
    collision_key,
    is_device_name,
    member_components,
    numbered_names,
    safe_name,
    sanitize_component,
    split_ext,
)


@pytest.mark.parametrize(
    ("announced", "saved"),
    [
        # T4: traversal attempts keep only a basename
        ("../x", "x"),
        ("/etc/x", "x"),
        ("~/.ssh/authorized_keys", "authorized_keys"),
        ("C:\\x", "x"),
        ("..\\x", "x"),
        ("a/../../x", "x"),
        ("\\\\server\\share\\x", "x"),
        ("x/", "x"),
        ("C:x", "C_x"),
        # T1: degenerate names
        ("", FALLBACK_FILE_NAME),
        (".", FALLBACK_FILE_NAME),
        ("..", FALLBACK_FILE_NAME),
        ("/", FALLBACK_FILE_NAME),
        ("a/..", FALLBACK_FILE_NAME),
        ("...", FALLBACK_FILE_NAME),
        ("a\x00b", "a_b"),
        (b"bad\xff\xfename", "bad\ufffd\ufffdname"),
        ("\ud800lone", "_lone"),
        ("report.pdf", "report.pdf"),
        (".bashrc", ".bashrc"),
        ("résumé.txt", "résumé.txt"),
        # our own temp/staging prefixes are never handed to a peer
        (".sp2p-recv-123", "_.sp2p-recv-123"),
        (".sp2p-extract-1", "_.sp2p-extract-1"),
        # T10 spoofing characters in names
        ("invoice\u202egpj.exe", "invoice_gpj.exe"),
        ("a\x1b[2Kb", "a_[2Kb"),
        ("zero\u200bwidth", "zero_width"),
    ],
)
def test_safe_name(announced: str | bytes, saved: str) -> None:
    assert safe_name(announced) == saved


@pytest.mark.parametrize(
    ("name", "saved"),
    [
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("NUL.tar.gz", "_NUL.tar.gz"),
        ("COM1", "_COM1"),
        ("COM\u00b9", "_COM\u00b9"),
        ("lpt9.txt", "_lpt9.txt"),
        ("CONIN$", "_CONIN$"),
        ("CON ", "_CON"),
        ("com1 .txt", "_com1 .txt"),
        ("foo.", "foo"),
        ("foo. . ", "foo"),
        ("file.txt:stream", "file.txt_stream"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("CONSOLE", "CONSOLE"),
        ("COM10", "COM10"),
    ],
)
def test_portable_policy_t11(name: str, saved: str) -> None:
    assert sanitize_component(name) == saved
    assert safe_name(name) == saved


def test_reserved_detection_is_case_and_suffix_aware() -> None:
    assert is_device_name("aux.c") and is_device_name("Prn") and not is_device_name("auxiliary")


def test_long_names_are_shortened_deterministically_keeping_the_extension() -> None:
    name = "é" * 200 + ".tar.gz"  # 400 bytes of stem
    out = safe_name(name)
    assert out == safe_name(name)
    assert len(out.encode()) <= 255
    assert out.endswith(".gz") and out.startswith("é")
    out.encode("utf-8")  # never cut inside a character


def test_split_ext_is_go_style() -> None:
    assert split_ext("a.tar.gz") == ("a.tar", ".gz")
    assert split_ext(".bashrc") == (".bashrc", "")
    assert split_ext("noext") == ("noext", "")


def test_numbered_names() -> None:
    names = list(numbered_names("a.tar.gz"))
    assert names[:3] == ["a.tar.gz", "a.tar (1).gz", "a.tar (2).gz"]
    assert names[-1] == "a.tar (1000).gz" and len(names) == 1001
    assert list(numbered_names("my.dir", split_extension=False))[1] == "my.dir (1)"
    long = "x" * 255
    assert all(len(n.encode()) <= 255 for n in numbered_names(long))


def test_collision_key_folds_case_and_normalisation() -> None:
    assert collision_key("README") == collision_key("readme")
    assert collision_key("\u00e9.txt") == collision_key("e\u0301.txt")
    assert collision_key("Stra\u00dfe") == collision_key("STRASSE")
    assert collision_key("a") != collision_key("b")


@pytest.mark.parametrize(
    "name",
    [
        "../evil", "/abs/evil", "a/../../evil", "./../evil", "C:evil", "C:\\evil",
        "\\..\\evil", "a\\b", "a/\x00b", "x/" * 101 + "x", "a/" + "n" * 256,
        "n" * 4097,
    ],
)
def test_member_components_rejects_unsafe_structure(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        member_components(name)


def test_member_components_normalises_harmless_forms() -> None:
    assert member_components("./a//b/") == ("a", "b")
    assert member_components("./") == ()
    assert member_components("dir/CON/file.") == ("dir", "_CON", "file")
    assert len(member_components("/".join(["d"] * 100))) == 100


# --------------------------------------------------------------- T4 property

SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "/", "\\", "~", "C:", "CON", ".sp2p-recv-x", " ", "\x00"]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SEGMENTS, max_size=8).map("".join))
def test_safe_name_is_always_one_safe_component_inside_outdir(name: str) -> None:
    out = safe_name(name)
    assert out and out not in (".", "..")
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert len(out.encode("utf-8", "surrogatepass")) <= 255
    assert not out.startswith(".sp2p-")
    outdir = Path("/srv/out")
    resolved = Path(os.path.normpath(outdir / out))
    assert resolved.parent == outdir
    assert not is_device_name(out)
    assert safe_name(out) == out  # idempotent: a saved name is already safe


@settings(max_examples=200, deadline=None)
@given(st.lists(SEGMENTS, max_size=8).map("".join))
def test_member_components_never_escape(name: str) -> None:
    try:
        parts = member_components(name)
    except UnsafeNameError:
        return
    root = Path("/srv/staging")
    resolved = Path(os.path.normpath(root.joinpath(*parts))) if parts else root
    assert resolved == root or root in resolved.parents
    assert all(p not in ("", ".", "..") and "/" not in p and "\\" not in p for p in parts)
