"""glibc tuning of the serving process: the trimmer thread runs, stops, and can be disabled."""

from __future__ import annotations

import sys
import time

import pytest

from serving.malloc import Trimmer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trimmer_trims_until_stopped() -> None:
    """A running trimmer calls malloc_trim periodically and stops calling it after stop()."""
    t = Trimmer(0.01)
    assert t.start()
    deadline = time.monotonic() + 10.0
    while t.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t.stop()
    done = t.trims
    time.sleep(0.05)
    assert done >= 3 and t.trims == done


def test_zero_period_disables_the_trimmer() -> None:
    """every_s = 0 starts no thread."""
    assert not Trimmer(0.0).start()
