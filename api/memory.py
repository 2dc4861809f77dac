"""Give memory back to the system after a large response (an export of the whole list).

CPython frees the frames and Arrow buffers of an export when the request ends, but glibc's
allocator and Arrow's memory pool keep the freed pages for reuse, so the server's resident
memory stayed at its peak (2.9 GB after an all-basins Excel export). :func:`release_memory`
collects cycles, asks Arrow's default pool to release unused memory and glibc to trim its
heaps (``malloc_trim(0)``; a no-op on other C libraries).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import cache

__all__ = ["release_memory"]

log = logging.getLogger(__name__)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:  # pragma: no cover - no C library to load
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_memory() -> None:
    """Return freed memory to the operating system (best effort, never raises)."""
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # pragma: no cover - Arrow missing or pool without support
        log.debug("arrow pool release failed", exc_info=True)
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
