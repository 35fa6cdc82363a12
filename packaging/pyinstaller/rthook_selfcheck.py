"""PyInstaller runtime hook: `SP2P_FROZEN_SELFCHECK=1 sp2p` checks the binary and exits.

Runs before the CLI. The check (packaging/pyinstaller/sp2p_frozen_selfcheck.py) proves
the frozen interpreter holds everything the lazily imported code paths need, above all
a working aiortc data channel without PyAV. Without the variable this hook does nothing.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("SP2P_FROZEN_SELFCHECK") == "1":
    from sp2p_frozen_selfcheck import main

    sys.exit(main())
