"""`memento bench soak` on a real server: a minute of mixed concurrent traffic in the default
run (no 5xx but backpressure, every acknowledged write stored once, erased users gone), and
ten minutes with the memory slope bounded in the slow run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.soak import SoakConfig, SoakResult, run_soak
from serving.testing import server_env

ROUTES = {"recommend", "feedback", "feedback_repeat", "events", "cases_list", "case_get", "erase"}
"""Every route label a soak client calls (case_get only when a listed user has cases)."""


def _soak(tmp_path: Path, minutes: float, concurrency: int) -> SoakResult:
    """A soak against a started server on the test catalogue (fresh model, hashing encoder)."""
    env = server_env(tmp_path / "unused.sqlite3")  # run_soak gives the server its own store
    cfg = SoakConfig(
        minutes=minutes,
        concurrency=concurrency,
        server_env=tuple(env.items()),
        erase_every=15,
        sample_every_s=2.0,
        window_s=15.0,
        drain_timeout_s=120.0,
        out_dir=tmp_path / "out",
    )
    return run_soak(cfg)


def _assert_sound(r: SoakResult) -> None:
    """No server error or lost connection; the store check passes with something in it."""
    bad = {k: v.statuses for k, v in r.routes.items() if v.share_5xx and k != "feedback"}
    assert r.five_xx_not_503 == 0 and r.transport_errors == 0, r.routes
    assert not bad, bad  # only feedback may answer 503 (learner queue full)
    assert r.store is not None and r.store.ok, r.store
    assert r.store.events_acknowledged > 0 and r.store.feedback_acknowledged > 0
    assert r.store.erased_users > 0
    assert ROUTES - {"case_get"} <= set(r.routes), set(r.routes)


def test_a_minute_of_mixed_traffic_answers_no_5xx_and_stores_every_ack_once(
    tmp_path: Path,
) -> None:
    """4 clients for one minute: no 5xx other than feedback's 503, every acknowledged event and
    feedback stored once, erased users gone, the queue drained, memory sampled, files written."""
    r = _soak(tmp_path, minutes=1.0, concurrency=4)
    _assert_sound(r)
    assert r.learner.drain_s is not None
    assert r.rss_mb_start is not None and len(r.samples) >= 10
    saved = json.loads((tmp_path / "out" / "soak.json").read_text())
    assert saved["store"]["ok"] is True and (tmp_path / "out" / "soak.png").stat().st_size > 0


@pytest.mark.slow
def test_ten_minutes_of_mixed_traffic_keep_memory_flat(tmp_path: Path) -> None:
    """8 clients for ten minutes: sound as above, and the resident memory grows by at most
    1 MiB per minute over the second half."""
    r = _soak(tmp_path, minutes=10.0, concurrency=8)
    _assert_sound(r)
    slope = r.rss_slope_mb_per_min_second_half
    assert slope is not None and slope <= 1.0, (slope, r.samples)
