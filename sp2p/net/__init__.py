"""Thin blocking I/O shells: sockets, WebSocket signaling, WebRTC. No protocol decisions here."""
