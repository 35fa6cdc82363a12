"""sp2p: secure peer-to-peer data transfer, wire-compatible with sp2p protocol v2."""

__version__ = "0.3.0"
