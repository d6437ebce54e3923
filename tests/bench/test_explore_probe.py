"""`bench.service.explore_probe` reads the policy's gauges off a Prometheus page."""

from __future__ import annotations

import math

from bench.service.explore_probe import _gauge

PAGE = """# HELP memento_policy_entropy Entropy
# TYPE memento_policy_entropy gauge
memento_policy_entropy 2.5
memento_policy_top1_total 10.0
memento_policy_top1_greedy_total 6.0
"""


def test_gauge_reads_each_metric_by_its_exact_name() -> None:
    """Each name reads its own line (not a longer name's), and a missing one reads nan."""
    assert _gauge(PAGE, "memento_policy_entropy") == 2.5
    assert _gauge(PAGE, "memento_policy_top1_total") == 10.0
    assert _gauge(PAGE, "memento_policy_top1_greedy_total") == 6.0
    assert math.isnan(_gauge(PAGE, "memento_missing"))
