"""Links and byte pipelines: framed and multi-stream links, the send/receive pumps, sources and sinks."""
