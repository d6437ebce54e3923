"""The explore probe reads the policy's metrics with `serving.testing.metric`, exact names."""

from __future__ import annotations

import httpx
import pytest

from serving.testing import metric

PAGE = """# HELP memento_policy_entropy Entropy
# TYPE memento_policy_entropy gauge
memento_policy_entropy 2.5
memento_policy_top1_total 10.0
memento_policy_top1_greedy_total 6.0
"""


def test_metric_reads_each_probe_metric_by_its_exact_name() -> None:
    """Each name reads its own line (not a longer name's), and a missing one fails loudly."""
    transport = httpx.MockTransport(lambda _: httpx.Response(200, text=PAGE))
    with httpx.Client(transport=transport, base_url="http://probe") as client:
        assert metric(client, "memento_policy_entropy") == 2.5
        assert metric(client, "memento_policy_top1_total") == 10.0
        assert metric(client, "memento_policy_top1_greedy_total") == 6.0
        with pytest.raises(AssertionError, match="memento_missing"):
            metric(client, "memento_missing")
