"""glibc malloc tuning of the serving process (`ServingSettings.malloc_arena_max`).

Request threads and the learner allocate large transient arrays (candidate features, the
update batch: tens of MB per online update with the trained model). With glibc's defaults each
thread gets its own arena (up to 8 per core) and the mmap threshold rises to the size of the
largest block freed, so those arrays end up in arenas that keep their pages: the service's
resident memory kept growing under 8 concurrent clients (0.8 -> 1.2 GB in 4 minutes, still
rising). With 2 arenas and the threshold fixed at 128 KiB, big blocks are mapped and returned
on free (same 4-minute soak: 0.79 -> 0.88 GB, flat after the first minute; serving/README.md,
memory budget). A no-op where malloc is not glibc's.

The fixed threshold is 1 MiB (`malloc_mmap_threshold_kib`): at 128 KiB each recommend mapped
and unmapped ~16 arrays of 144-160 KiB (candidate vectors and features), whose page faults cost
0.8 ms of system CPU per recommend with the blend scorer and 3.7 ms with the items scorer
(12.4 -> 8.0 ms of server CPU per recommend at 1 MiB). The update arrays (tens of MB) are still
mapped and returned on free; the RSS of 3-minute recommend -> feedback runs at 8 in flight rose
alike at both thresholds (+10 to +15 MiB; serving/README.md, load test).

`Trimmer` calls glibc's `malloc_trim(0)` every few seconds from its own thread: free pages
inside the heap (not only at its top) go back to the system. Python's tracemalloc saw the
service's own allocations flat over a soak (330.0 -> 329.8 MB in 3 minutes) while its RSS rose
~4 MB per minute: freed, not live, memory kept by the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading

__all__ = ["Trimmer", "tune_malloc"]

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc `mallopt` parameter: blocks at least this large are mapped (a set value stays fixed)."""
M_ARENA_MAX = -8
"""glibc `mallopt` parameter: the most arenas the threads of the process share."""
MMAP_THRESHOLD_KIB = 1024
"""The fixed mmap threshold (KiB) by default (`malloc_mmap_threshold_kib`; glibc starts at 128)."""


def _glibc() -> ctypes.CDLL | None:
    """glibc, or None (not Linux, or a libc without mallopt)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if getattr(libc, "mallopt", None) is not None else None


class Trimmer:
    """A daemon thread returning the heap's free pages every `every_s` seconds (0: none)."""

    def __init__(self, every_s: float) -> None:
        self._every = every_s
        self._libc = _glibc() if every_s > 0 else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0
        """Trims done so far."""

    def start(self) -> bool:
        """Start trimming; False when there is nothing to do (disabled, or not glibc)."""
        if self._libc is None:
            return False
        self._thread = threading.Thread(target=self._run, name="memento-malloc-trim", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        assert self._libc is not None
        while not self._stop.wait(self._every):
            self._libc.malloc_trim(0)
            self.trims += 1

    def stop(self) -> None:
        """Stop the thread (after its current trim)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def tune_malloc(arenas: int, threshold_kib: int = MMAP_THRESHOLD_KIB) -> bool:
    """Cap glibc's arenas at `arenas` and fix the mmap threshold at `threshold_kib` (arenas 0:
    leave malloc as it is). Whether it took effect (False off glibc). Call before the request
    threads start."""
    libc = _glibc() if arenas > 0 else None
    if libc is None:  # disabled, or not glibc (musl has no mallopt)
        return False
    mallopt = libc.mallopt
    capped = mallopt(M_ARENA_MAX, arenas) == 1
    done = capped and mallopt(M_MMAP_THRESHOLD, threshold_kib * 1024) == 1
    if not done:
        logger.warning("mallopt refused the arena cap or the mmap threshold")
    return done
