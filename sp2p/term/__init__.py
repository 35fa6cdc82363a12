"""The terminal: output, progress, escaping of peer text, questions on /dev/tty, QR codes."""
