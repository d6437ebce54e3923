"""glibc malloc tuning of the serving process (`ServingSettings.malloc_arena_max`).

Request threads and the learner allocate large transient arrays (candidate features, the
update batch: tens of MB per online update with the trained model). With glibc's defaults each
thread gets its own arena (up to 8 per core) and the mmap threshold rises to the size of the
largest block freed, so those arrays end up in arenas that keep their pages: the service's
resident memory kept growing under 8 concurrent clients (0.8 -> 1.2 GB in 4 minutes, still
rising). With 2 arenas and the threshold fixed at 128 KiB, big blocks are mapped and returned
on free (same 4-minute soak: 0.79 -> 0.88 GB, flat after the first minute; serving/README.md,
memory budget). A no-op where malloc is not glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["tune_malloc"]

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc `mallopt` parameter: blocks at least this large are mapped (a set value stays fixed)."""
M_ARENA_MAX = -8
"""glibc `mallopt` parameter: the most arenas the threads of the process share."""
MMAP_THRESHOLD = 128 * 1024
"""glibc's initial threshold, kept fixed instead of rising with the blocks freed."""


def tune_malloc(arenas: int) -> bool:
    """Cap glibc's arenas at `arenas` and fix the mmap threshold (0: leave malloc as it is).
    Whether it took effect (False off glibc). Call before the request threads start."""
    if arenas <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not glibc (musl has no mallopt)
        return False
    done = mallopt(M_ARENA_MAX, arenas) == 1 and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not done:
        logger.warning("mallopt refused the arena cap or the mmap threshold")
    return done
