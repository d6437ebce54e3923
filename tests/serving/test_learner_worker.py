"""The learner thread's batches: what is queued is applied as one batch inside the core's
`batched()` (one round of gradient steps), each row is flagged applied once, and the lag in
decisions is the number of decisions served between a feedback's acknowledgement and its
application."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from serving.learner_worker import BatchLearner, FeedbackJob, LearnerWorker
from serving.metrics import ServingMetrics
from serving.service import DecisionSnapshot, LearnerUpdate
from serving.store import Store


class _BatchCore:
    """Records which feedback each `batched()` block applied; one 'step' per block."""

    def __init__(self) -> None:
        self.blocks: list[list[str]] = []
        self._open: list[str] | None = None
        self.checkpoints = 0

    @contextlib.contextmanager
    def batched(self) -> Iterator[list[dict[str, float]]]:
        self._open, steps = [], []
        yield steps
        self.blocks.append(self._open)
        self._open = None
        steps.append({"losses/td": 0.25})

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell: float | None
    ) -> LearnerUpdate:
        assert self._open is not None, "feedback applied outside a batch"
        self._open.append(decision.decision_id)
        return LearnerUpdate(reward=1.0, td_loss=None, new_case_id=None)

    def checkpoint(self) -> None:
        self.checkpoints += 1


def _decision(store: Store, k: int) -> FeedbackJob:
    d = DecisionSnapshot(f"d{k}", "u", b"", b"{}", (), ("i",), "v", 0.0)
    store.put_decision(d)
    fid, _ = store.insert_feedback(f"key{k}", d.decision_id, "i", "click", None)
    return FeedbackJob(fid, d.decision_id, "i", "click", None)


def test_queued_feedback_is_applied_as_batches_with_its_lag_in_decisions(tmp_path: Path) -> None:
    """Five feedback queued with 3, 3, 3, 7, 7 decisions served before each: with max_batch 3
    they are applied in batches [d0 d1 d2] and [d3 d4], each batch trains once, every row is
    flagged applied, and the last batch's lag is 10 - 7 = 3 decisions."""
    store = Store(tmp_path / "db.sqlite3")
    core, metrics = _BatchCore(), ServingMetrics()
    assert isinstance(core, BatchLearner)
    worker = LearnerWorker(
        core, store, metrics, queue_size=10, checkpoint_every=100, retry_after_s=1, max_batch=3
    )
    for k in range(5):
        if k in (0, 3):
            for _ in range(3 if k == 0 else 4):
                metrics.decision_served()
        worker.submit(_decision(store, k))
    for _ in range(3):
        metrics.decision_served()
    worker.stop()  # the thread never ran: stop drains the queue in batches, then checkpoints
    assert core.blocks == [["d0", "d1", "d2"], ["d3", "d4"]]
    value = metrics.registry.get_sample_value
    assert value("memento_learner_steps_total") == 2
    assert value("memento_learner_updates_total") == 5
    assert value("memento_learner_lag_decisions") == 3.0
    assert value("memento_learner_td_loss") == 0.25
    assert core.checkpoints == 1
    assert not store.feedback(unapplied_only=True) and len(store.feedback()) == 5
    store.close()


def test_apply_queued_applies_in_the_callers_thread_in_batches(tmp_path: Path) -> None:
    """With the thread never started, `apply_queued` applies the five queued feedback in
    batches of at most 3 ([d0 d1 d2], [d3 d4]), returns 5, and leaves nothing queued."""
    store = Store(tmp_path / "db.sqlite3")
    core, metrics = _BatchCore(), ServingMetrics()
    worker = LearnerWorker(
        core, store, metrics, queue_size=10, checkpoint_every=100, retry_after_s=1, max_batch=3
    )
    for k in range(5):
        worker.submit(_decision(store, k))
    assert worker.apply_queued() == 5
    assert core.blocks == [["d0", "d1", "d2"], ["d3", "d4"]]
    assert worker.depth() == 0 and worker.apply_queued() == 0
    store.close()


def _blocks_after(
    worker: LearnerWorker, core: _BatchCore, jobs: list[FeedbackJob], gap_s: float
) -> list[list[str]]:
    """Submit `jobs` to the running thread `gap_s` apart; the first applied batch."""
    import time

    for job in jobs:
        worker.submit(job)
        time.sleep(gap_s)
    deadline = time.monotonic() + 10
    while not core.blocks and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    return core.blocks[:1]


def test_the_running_thread_lingers_so_feedback_arriving_together_is_one_batch(
    tmp_path: Path,
) -> None:
    """With a 3 s linger, four feedback submitted 0.3 s apart to the running thread are
    applied as one batch; with no linger the thread applies the first one alone."""
    store = Store(tmp_path / "db.sqlite3")
    for linger, first in ((3.0, ["d0", "d1", "d2", "d3"]), (0.0, ["d4"])):
        core = _BatchCore()
        worker = LearnerWorker(
            core, store, ServingMetrics(), queue_size=10, checkpoint_every=100, retry_after_s=1,
            linger_s=linger,
        )  # fmt: skip
        worker.start()
        start = 0 if linger else 4
        jobs = [_decision(store, k) for k in range(start, start + 4)]
        assert _blocks_after(worker, core, jobs, gap_s=0.3) == [first]
    store.close()
