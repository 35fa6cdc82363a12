"""Orchestration: the only code that knows the order signaling -> keys -> connect -> transfer."""
