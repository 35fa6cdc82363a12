"""Command line entry point (placeholder until the CLI issue lands: prints help and version)."""

from __future__ import annotations

import sys

from sp2p import __version__

USAGE = """usage: sp2p <command> [flags]

commands:
  send [flags] <file|folder|...|->   send files, a folder or stdin
  receive|recv [flags] <CODE>        receive with a transfer code
  version                            print the version
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("version", "--version", "-version"):
        print(f"sp2p {__version__}")
        return 0
    sys.stderr.write(USAGE)
    return 0 if args and args[0] in ("help", "-h", "--help") else 1
