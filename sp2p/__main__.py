"""`python -m sp2p` and the PyInstaller entry point."""

import sys

from sp2p.cli import main

if __name__ == "__main__":
    sys.exit(main())
