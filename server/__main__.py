"""`python -m server` is `sp2p-server`."""

from __future__ import annotations

import sys

from server.cli import main

sys.exit(main())
