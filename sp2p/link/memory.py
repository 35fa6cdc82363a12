"""Keep glibc from handing freed transfer buffers back to the kernel after every chunk.

A transfer allocates and frees a few 256 KiB-1 MiB buffers per chunk on different threads
(file reads, socket reads, decrypted and compressed chunks). glibc's default heuristics
trim the heap or unmap such blocks as soon as they are freed, so the next chunk faults its
pages in again and the kernel zeroes them: measured here, ~500 000 page faults and about
one CPU-second per GiB sent. Fixed thresholds keep that memory for reuse instead (bounded:
only what the pipeline has in flight at once is ever held).
"""

from __future__ import annotations

import sys
from typing import Final

from sp2p.log import get_logger

log = get_logger(__name__)

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
#: blocks below this come from the heap, so they are reused instead of mmap/munmap'd each time
MMAP_THRESHOLD: Final = 4 * 1024 * 1024
#: free memory at the top of the heap kept before glibc gives it back
TRIM_THRESHOLD: Final = 64 * 1024 * 1024
#: a single file up to this size moves too few buffers for the thresholds to matter
SMALL_TRANSFER: Final = 1024 * 1024

_done = False


def keep_freed_memory() -> None:
    """Idempotent; does nothing where the C library is not glibc."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    import ctypes  # here: a small transfer never calls this, and ctypes costs a start ~2 ms

    try:
        # the process's own symbols include libc's: find_library("c") would run ldconfig
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.debug("mallopt refused the buffer thresholds")
