"""Prometheus metrics of one app instance (own `CollectorRegistry`, so apps never collide)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    """Request latency, learner queue depth, TD loss, case-bank size and learner counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "memento_request_latency_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("memento_learner_queue_depth", "Feedback waiting.", registry=r)
        self.td_loss = Gauge("memento_learner_td_loss", "TD loss of the last update.", registry=r)
        self.reward = Gauge("memento_learner_last_reward", "Reward of the last update.", registry=r)
        self.bank_size = Gauge("memento_case_bank_size", "Live cases in the bank.", registry=r)
        self.policy_entropy = Gauge(
            "memento_policy_entropy",
            "Entropy (nats) of the policy over its candidates, last recommend with a choice.",
            registry=r,
        )
        self.top1 = Counter(
            "memento_policy_top1",
            "Decisions whose first choice the policy made (the share that went to its greedy "
            "choice: memento_policy_top1_greedy_total / memento_policy_top1_total).",
            registry=r,
        )
        self.top1_greedy = Counter(
            "memento_policy_top1_greedy",
            "Decisions whose first choice was the policy's greedy (best-scoring) candidate.",
            registry=r,
        )
        self.updates = Counter(
            "memento_learner_updates", "Feedback applied by the online learner.", registry=r
        )
        self.steps = Counter(
            "memento_learner_steps", "Gradient steps of the online learner.", registry=r
        )
        self.batch_size = Gauge(
            "memento_learner_batch", "Feedback applied in the last learner batch.", registry=r
        )
        self.decisions = Counter(
            "memento_decisions", "Decisions served (recommend answers).", registry=r
        )
        self.lag_decisions = Gauge(
            "memento_learner_lag_decisions",
            "Decisions served between the acknowledgement of the last applied feedback and its "
            "application (the learner's lag, counted in decisions).",
            registry=r,
        )
        self.lag_seconds = Gauge(
            "memento_learner_lag_seconds",
            "Seconds between the acknowledgement of the last applied feedback and its application.",
            registry=r,
        )
        self.drift_alarms = Counter(
            "memento_reward_drift_alarms",
            "Reward-drop alarms: the reward per shown item fell well below its recent level and "
            "the learner restarted its steps and exploration (recsys.rec.drift).",
            registry=r,
        )
        self.update_errors = Counter(
            "memento_learner_update_errors", "Updates the core failed on.", registry=r
        )
        self.checkpoints = Counter("memento_learner_checkpoints", "Core checkpoints.", registry=r)
        self.feedback = Counter(
            "memento_feedback", "Feedback requests by outcome.", ["outcome"], registry=r
        )

        self._served = itertools.count(1)
        self._last_served = 0

    def decision_served(self) -> None:
        """Count one decision (`memento_decisions_total`, and `served` for the learner's lag)."""
        self._last_served = next(self._served)
        self.decisions.inc()

    def top1_served(self, greedy: bool) -> None:
        """Count one first choice of the policy, and whether it was the greedy one."""
        self.top1.inc()
        if greedy:
            self.top1_greedy.inc()

    @property
    def served(self) -> int:
        """Decisions served so far by this app instance."""
        return self._last_served

    def bind(self, queue_depth: Callable[[], float], bank_size: Callable[[], float]) -> None:
        """Sample queue depth and bank size at scrape time."""
        self.queue_depth.set_function(queue_depth)
        self.bank_size.set_function(bank_size)

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
