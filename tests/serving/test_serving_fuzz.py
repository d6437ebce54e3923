"""OpenAPI-driven fuzzing (schemathesis 4) of a real loopback server: no input gives a 5xx.

The pytest plugin of schemathesis (`from_fixture`) does not run under pytest 9 here, so the
test drives hypothesis directly over every operation's positive and negative strategies.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.openapi import from_url

from serving.process import ServerProcess
from serving.testing import AUTH

EXAMPLES = 30
"""Hypothesis examples per operation and generation mode."""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(server: ServerProcess, mode: GenerationMode) -> None:
    """Generated valid and invalid requests (with the API key) never get a 5xx."""
    schema = from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    seen: dict[int, int] = {}
    skipped: list[str] = []
    for op in operations:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case) -> None:
            response = case.call(base_url=server.url, headers=AUTH, timeout=10)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (
                case.operation.label,
                response.status_code,
                response.text[:300],
            )
            if response.status_code in (400, 413, 422):
                assert response.json()["message"], "error answers carry a message"

        try:
            check()
        except Unsatisfiable:  # e.g. no invalid input exists for GET /healthz
            assert mode is GenerationMode.NEGATIVE, op.label
            skipped.append(op.label)
    assert len(skipped) <= 5, skipped
    assert any(code < 300 for code in seen), seen
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/readyz").status_code == 200, "server survived the fuzzing"
    print(mode.value, dict(sorted(seen.items())), "no negative input for", skipped)
