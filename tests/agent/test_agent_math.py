"""Tests of the safe arithmetic evaluator."""

from __future__ import annotations

import math

import pytest

from agent.errors import MathEvalError
from agent.tools.math_eval import evaluate


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10 + sqrt(16)", 1028.0),
        ("2^3", 8),
        ("7 // 2 + 7 % 2", 4),
        ("-3 + +4", 1),
        ("factorial(5) / 4", 30.0),
        ("round(pi, 3)", 3.142),
        ("log(e)", 1.0),
        ("max(1, 5, 3) - min(2, 4)", 3),
    ],
)
def test_evaluate_matches_hand_computed_values(expr: str, expected: float) -> None:
    """Whitelisted arithmetic gives the hand-computed value."""
    assert math.isclose(evaluate(expr), expected)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(1).__class__",
        "[x for x in range(3)]",
        "lambda: 1",
        "x + 1",
        "'a' * 3",
        "True + 1",
        "9 ** 999999",
        "factorial(100000)",
        "1 / 0",
        "2 +",
    ],
)
def test_evaluate_rejects_unsafe_or_bad_input(expr: str) -> None:
    """Names, attributes, unlisted calls, huge powers and errors raise MathEvalError."""
    with pytest.raises(MathEvalError):
        evaluate(expr)
