"""The learning path restores an items decision's candidates once for its consecutive calls:
the Q step and the cross model's step read the same arrays a fresh `restore` gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.core import ServingCore
from tests.serving.test_serving_core import _core, _decide, _events, _write_cases


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def test_items_decision_is_restored_once_and_as_a_fresh_restore(tmp_path: Path) -> None:
    """Two rows of one decision: one `restore` call, whose candidates equal a new one's."""
    core: ServingCore = _core(tmp_path, recommend={"scorer": "items"}, updates_per_feedback=1)
    _write_cases(core)
    ev = _events("i0", "i2")
    d = _decide(core, ev)
    rt, scorer = core.runtime, core.runtime.rec.scorer
    calls: list[int] = []
    restore = scorer.restore

    def counted(*a: object, **k: object) -> object:
        calls.append(1)
        return restore(*a, **k)  # type: ignore[arg-type]

    scorer.restore = counted  # type: ignore[method-assign]
    try:
        core.apply_feedback(d, d.items[0], "click", None)
        core.apply_feedback(d, d.items[1], "click", None)
    finally:
        del scorer.restore
    assert len(calls) == 1
    learning = core._learning
    assert learning._restore is not None
    got = learning._restore[2]
    snap = learning._decoded(d)
    fresh = scorer.restore(rt.rec, snap.sids, snap.sims, snap.feats, lambda s: -1)
    for name in ("case_ids", "keys", "sims", "features", "mask"):
        assert np.array_equal(getattr(got, name), getattr(fresh, name)), name
