"""Shared test helpers (real sp2p-server processes, ...)."""
