"""Giving freed memory back to the system between the stages of a large reconciliation.

A stage frees most of what it built (the ingest's cells, the ledger read's batches, a
partition's frames), but the allocators keep the freed pages for later: Arrow's pool
(mimalloc by default) and glibc's heap. Measured at 2 million rows, a process that held a
200 MB ledger frame had 450 MB more resident after the read, freed but kept; the next stage
then starts that much higher and the run's peak (the high-water mark finance's machine must
have) is the sum. ``release()`` asks both allocators to return what they hold unused: Arrow's
``release_unused`` and glibc's ``malloc_trim(0)`` (a walk of the free lists, milliseconds). It
changes no data; on a system without glibc only Arrow's pool is asked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any

import pyarrow as pa


@cache
def _libc() -> Any | None:
    """glibc, if this process runs on it (``malloc_trim`` is glibc's); else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release() -> None:
    """Return the memory the allocators hold freed to the system (see the module docstring)."""
    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
