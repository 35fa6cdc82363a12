"""What is sent and what lands on disk: sources to send, archives, extraction, safe names, partials."""
