"""`python -m sp2p` and the PyInstaller entry point."""

import sys

from sp2p.cli import run

if __name__ == "__main__":
    sys.exit(run())
