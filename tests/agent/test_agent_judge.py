"""Oracle tests of EM/F1 with the official HotpotQA/SQuAD answer normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agent.judge import exact_match, f1_score, judge_answer, normalize_answer


def test_normalize_answer_official_steps() -> None:
    """Lowercase, punctuation, articles and whitespace are removed as in the official script."""
    assert normalize_answer("  The Eiffel-Tower, in PARIS! ") == "eiffeltower in paris"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theater") == "theater"


def test_exact_match_after_normalisation() -> None:
    """EM is 1 exactly when the normalised strings agree."""
    assert exact_match("The Beatles.", "beatles") == 1.0
    assert exact_match("Beatles band", "beatles") == 0.0


def test_f1_hand_computed() -> None:
    """F1 of 'barack obama jr' vs 'barack obama': P=2/3, R=1 -> 0.8."""
    assert f1_score("Barack Obama Jr", "Barack Obama") == pytest.approx(0.8)
    # pred 'a b c d' -> tokens b c d (article a dropped); gold 'b x': P=1/3, R=1/2 -> 0.4
    assert f1_score("a b c d", "b x") == pytest.approx(0.4)
    assert f1_score("paris", "london") == 0.0


def test_f1_yes_no_rule() -> None:
    """A yes/no answer that differs scores 0 even with token overlap (HotpotQA rule)."""
    assert f1_score("yes", "yes") == 1.0
    assert f1_score("no", "no it is not") == 0.0
    assert f1_score("yes it is", "yes") == 0.0


class _FixedJudge:
    def __init__(self, score: float) -> None:
        self.score = score
        self.calls: list[tuple[str, str, Sequence[str]]] = []

    def grade(self, question: str, prediction: str, gold: Sequence[str]) -> float:
        self.calls.append((question, prediction, gold))
        return self.score


def test_judge_answer_max_over_golds_and_llm_hook() -> None:
    """judge_answer takes the max over gold answers; an LLM judge's verdict becomes the reward."""
    r = judge_answer("NYC", ["New York City", "NYC"])
    assert (r.em, r.f1, r.reward, r.llm_verdict) == (1.0, 1.0, 1.0, None)
    j = _FixedJudge(0.25)
    r2 = judge_answer("Paris", "Paris", question="capital?", llm_judge=j)
    assert (r2.em, r2.reward, r2.llm_verdict) == (1.0, 0.25, 0.25)
    assert j.calls == [("capital?", "Paris", ["Paris"])]
