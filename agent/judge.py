"""Answer judging: exact match and token F1 with the official HotpotQA/SQuAD normalisation,
plus a `LLMJudge` hook for when an LLM judge is configured.

Normalisation (SQuAD v1.1 / HotpotQA `normalize_answer`): lowercase, drop punctuation, drop the
articles a/an/the, collapse whitespace. HotpotQA's F1 also scores 0 when exactly one side is a
yes/no/noanswer and the two differ.

One deliberate deviation from the official script: a decimal point between two digits is kept
and a decimal's trailing zeros are dropped, so '35' no longer equals '3.5' and '42.0' equals
'42' (the official script deletes every '.'). Other datasets' scorers live in `agent.scorers`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "JudgeResult",
    "LLMJudge",
    "exact_match",
    "f1_score",
    "judge_answer",
    "normalize_answer",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_DECIMAL_TOKEN = re.compile(r"^(\d+)\.(\d+)$")
_KEEP = "\0"
"""Stands in for a decimal point while punctuation is removed (never in user text we keep)."""


def _canonical_decimal(token: str) -> str:
    """'42.0' -> '42', '3.50' -> '3.5'; other tokens unchanged."""
    m = _DECIMAL_TOKEN.match(token)
    if m is None:
        return token
    frac = m.group(2).rstrip("0")
    return f"{m.group(1)}.{frac}" if frac else m.group(1)


def normalize_answer(s: str) -> str:
    """Lowercase, remove punctuation (not a decimal point), articles and extra whitespace."""
    s = _DECIMAL_POINT.sub(_KEEP, s.replace(_KEEP, "").lower())
    s = "".join(ch for ch in s if ch not in _PUNCT).replace(_KEEP, ".")
    s = _ARTICLES.sub(" ", s)
    return " ".join(_canonical_decimal(t) for t in s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 between normalised prediction and gold (HotpotQA official)."""
    pred_n, gold_n = normalize_answer(prediction), normalize_answer(gold)
    if (pred_n in _SPECIAL or gold_n in _SPECIAL) and pred_n != gold_n:
        return 0.0
    pred_t, gold_t = pred_n.split(), gold_n.split()
    common = Counter(pred_t) & Counter(gold_t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_t), same / len(gold_t)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class JudgeResult:
    """Scores of one prediction against its gold answer(s)."""

    em: float
    f1: float
    reward: float
    """What the learner receives: the LLM judge's verdict if configured, else F1."""
    llm_verdict: float | None = None
    label: str | None = None
    """The judge's label where the benchmark defines labels (SimpleQA: CORRECT, INCORRECT,
    NOT_ATTEMPTED, or UNPARSED for a reply without a grade)."""


class LLMJudge(Protocol):
    """An LLM that grades a prediction (e.g. SimpleQA's grader): returns a score in [0, 1]."""

    def grade(self, question: str, prediction: str, gold: Sequence[str]) -> float: ...


def judge_answer(
    prediction: str,
    gold: str | Sequence[str],
    question: str = "",
    llm_judge: LLMJudge | None = None,
) -> JudgeResult:
    """EM/F1 as the max over accepted gold answers; reward = LLM verdict if a judge is given."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    assert golds, "need at least one gold answer"
    em = max(exact_match(prediction, g) for g in golds)
    f1 = max(f1_score(prediction, g) for g in golds)
    verdict = None
    if llm_judge is not None:
        verdict = float(llm_judge.grade(question, prediction, golds))
        assert 0.0 <= verdict <= 1.0, f"LLM judge must return a score in [0, 1], got {verdict}"
    return JudgeResult(em, f1, verdict if verdict is not None else f1, verdict)
