"""sans-IO core of sp2p: codes, key schedule, frames, messages, transfer state.

Nothing in this package opens sockets or files, starts threads, runs an event
loop or reads the clock; the shells in sp2p.net and sp2p.flow do that and feed
bytes and times in. A test enforces the rule by importing it in a clean interpreter.
"""
