"""Answer scorers as each benchmark defines them (HotpotQA EM/F1 stay in `agent.judge`).

- GAIA: quasi-exact match (`gaia_score`), following the rules GAIA publishes with its
  leaderboard: a numeric gold answer is compared as a float after stripping `$`, `%`, `,` and a
  unit from the prediction; a gold answer containing `,` or `;` is a list compared element-wise
  (same length; numbers as numbers, strings lowercased without whitespace); anything else is
  compared as a string lowercased without whitespace and punctuation.
- SimpleQA: an LLM grader (`OpenAIJudge`) that labels a prediction CORRECT / INCORRECT /
  NOT_ATTEMPTED (letters A / B / C) after SimpleQA's rubric, over any `ChatClient`
  (e.g. `OpenAIChatClient` on an OpenAI-compatible endpoint). A reply with no recognisable
  letter gets the label UNPARSED, which is counted and never scores as correct.
- DeepResearcher-style: token F1 (`agent.judge.f1_score`) plus a judged partial-match flag
  (`OpenAIJudge.grade_partial_match`, same judge, another instruction).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.errors import JudgeParseError
from agent.judge import JudgeResult, LLMJudge, f1_score, judge_answer
from recsys.llm.chat import ChatClient, Message, OpenAIChatClient, OpenAIChatConfig

__all__ = [
    "GaiaScore",
    "JudgeConfig",
    "OpenAIJudge",
    "PartialMatch",
    "SimpleQAGrade",
    "SimpleQALabel",
    "SimpleQATally",
    "gaia_score",
    "parse_simpleqa_letter",
    "parse_yes_no",
    "score_answer",
]


# --- GAIA quasi-exact match ----------------------------------------------------------------

GaiaKind = Literal["number", "list", "string"]

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_LIST_SEP = re.compile(r"[,;]")
_NUMBER_WITH_UNIT = re.compile(
    r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(°?[^\W\d_]+(?:/[^\W\d_]+)?)?\.?$"
)
"""One number, then at most one unit word ('12 km', '3.5kg', '9.8 m/s'), then maybe a period."""


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _parse_number(prediction: str) -> float:
    """The prediction as a number: `$`, `%`, `,` and one trailing unit removed; NaN if none."""
    s = prediction.strip()
    for ch in "$%,":
        s = s.replace(ch, "")
    s = s.strip()
    value = _as_float(s)
    if value is not None:
        return value
    m = _NUMBER_WITH_UNIT.match(s)
    return float(m.group(1)) if m else math.nan


def _norm_str(text: str, remove_punct: bool) -> str:
    """Lowercase, all whitespace removed, punctuation too if asked."""
    s = "".join(text.split()).lower()
    return s.translate(_PUNCT_TABLE) if remove_punct else s


@dataclass(frozen=True)
class GaiaScore:
    """A GAIA quasi-exact-match verdict with the forms that were compared."""

    correct: bool
    kind: GaiaKind
    """How the gold answer was read: a number, a list, or a string."""
    prediction_normalized: str
    """The prediction as compared ('nan' for a number that could not be parsed; list elements
    joined with ';')."""
    gold_normalized: str


def _elem(pred: str, gold: str) -> tuple[bool, str, str]:
    gold_num = _as_float(gold.strip())
    if gold_num is not None:
        pred_num = _parse_number(pred)
        return pred_num == gold_num, repr(pred_num), repr(gold_num)
    p, g = _norm_str(pred, remove_punct=False), _norm_str(gold, remove_punct=False)
    return p == g, p, g


def gaia_score(prediction: str, gold: str) -> GaiaScore:
    """GAIA quasi-exact match of `prediction` against one `gold` answer.

    Numbers compare as floats ('42.0' == '42', '35' != '3.5', '$1,000' == '1000'); a gold with
    `,`/`;` is a list whose elements compare pairwise (GAIA keeps punctuation inside list
    elements); otherwise lowercase strings without whitespace and punctuation must be equal.
    """
    gold_num = _as_float(gold.strip())
    if gold_num is not None:
        pred_num = _parse_number(prediction)
        return GaiaScore(pred_num == gold_num, "number", repr(pred_num), repr(gold_num))
    if _LIST_SEP.search(gold):
        golds, preds = _LIST_SEP.split(gold), _LIST_SEP.split(prediction)
        if len(golds) != len(preds):
            p = ";".join(_norm_str(x, remove_punct=False) for x in preds)
            g = ";".join(_norm_str(x, remove_punct=False) for x in golds)
            return GaiaScore(False, "list", p, g)
        pairs = [_elem(p, g) for p, g in zip(preds, golds, strict=True)]
        return GaiaScore(
            all(ok for ok, _, _ in pairs),
            "list",
            ";".join(p for _, p, _ in pairs),
            ";".join(g for _, _, g in pairs),
        )
    p, g = _norm_str(prediction, remove_punct=True), _norm_str(gold, remove_punct=True)
    return GaiaScore(p == g, "string", p, g)


# --- SimpleQA LLM grader ---------------------------------------------------------------------

SimpleQALabel = Literal["CORRECT", "INCORRECT", "NOT_ATTEMPTED", "UNPARSED"]
_LETTERS: dict[str, SimpleQALabel] = {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}

SIMPLEQA_INSTRUCTIONS = """\
You grade answers to short factual questions. You see a question, the gold target (the \
reference answer) and a predicted answer. Grade the predicted answer with one letter:

A) CORRECT: the prediction contains the full meaning of the gold target and contradicts it \
nowhere. Capitalisation, punctuation, word order, spelling variants of names and extra \
information that does not contradict the target are fine. A number is correct when it matches \
the target to the precision the target is given in (target 120k: 118k-122k style roundings that \
keep the stated significant figures pass, 100k does not).
B) INCORRECT: some statement in the prediction contradicts the gold target, even when it is \
hedged ("I think it might be ..."), or the prediction lists several candidate answers of which \
not all are right, or it is only partly right (e.g. a date with the wrong year).
C) NOT_ATTEMPTED: the prediction does not commit to an answer and contradicts nothing: it says \
it does not know, asks for more information, or gives only related facts without the answer \
the question asks for.

Judge only whether the prediction agrees with the gold target; do not use your own knowledge \
to overrule the target, and do not penalise a missing obvious part (e.g. the unit) when the \
question makes it clear.

Question: {question}
Gold target: {target}
Predicted answer: {prediction}

Reply with the single letter A, B or C and nothing else."""
"""Written after SimpleQA's published grading rubric (Wei et al. 2024, §2.2)."""

_FIRST_TOKEN = re.compile(r"^[\s*_`\"'(\[]*([ABC])(?:[)\].:*_`\"',]|\s*$|\s*\n|\s+[-–(])")
_KEYED = re.compile(r"(?i:grade|answer|letter|verdict|label)\W{0,4}(?i:is\W{0,3})?([ABC])\b")
_WORDS: tuple[tuple[re.Pattern[str], SimpleQALabel], ...] = (
    (re.compile(r"\bNOT[_\s-]?ATTEMPTED\b", re.I), "NOT_ATTEMPTED"),
    (re.compile(r"\bINCORRECT\b", re.I), "INCORRECT"),
    (re.compile(r"(?<![\w-])CORRECT\b", re.I), "CORRECT"),
)


def parse_simpleqa_letter(reply: str) -> SimpleQALabel:
    """The grade in a judge reply: a leading letter A/B/C, else 'grade: X', else exactly one
    label word (CORRECT / INCORRECT / NOT_ATTEMPTED); UNPARSED when none or several fit."""
    m = _FIRST_TOKEN.match(reply)
    if m:
        return _LETTERS[m.group(1)]
    keyed = {_LETTERS[x] for x in _KEYED.findall(reply)}
    if len(keyed) == 1:
        return keyed.pop()
    text = reply
    found: set[SimpleQALabel] = set()
    for pattern, label in _WORDS:  # longest label first, each removed once seen
        if pattern.search(text):
            found.add(label)
            text = pattern.sub(" ", text)
    return found.pop() if len(found) == 1 else "UNPARSED"


@dataclass(frozen=True)
class SimpleQAGrade:
    """One SimpleQA verdict."""

    label: SimpleQALabel
    raw: str
    """The judge's reply as received."""

    @property
    def correct(self) -> bool:
        return self.label == "CORRECT"


@dataclass(frozen=True)
class SimpleQATally:
    """Label counts over a run and SimpleQA's summary metrics."""

    counts: dict[SimpleQALabel, int]

    @classmethod
    def of(cls, grades: Iterable[SimpleQAGrade]) -> SimpleQATally:
        c = Counter(g.label for g in grades)
        labels: tuple[SimpleQALabel, ...] = ("CORRECT", "INCORRECT", "NOT_ATTEMPTED", "UNPARSED")
        return cls({lab: c[lab] for lab in labels})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def overall_correct(self) -> float:
        """Correct / all graded (unparsed replies count as not correct)."""
        return self.counts["CORRECT"] / self.total if self.total else 0.0

    @property
    def correct_given_attempted(self) -> float:
        """Correct / (correct + incorrect)."""
        attempted = self.counts["CORRECT"] + self.counts["INCORRECT"]
        return self.counts["CORRECT"] / attempted if attempted else 0.0

    @property
    def f_score(self) -> float:
        """Harmonic mean of overall correct and correct-given-attempted (SimpleQA's F-score)."""
        a, b = self.overall_correct, self.correct_given_attempted
        return 2 * a * b / (a + b) if a + b > 0 else 0.0


PARTIAL_MATCH_INSTRUCTIONS = """\
You check answers to research questions. You see a question, the gold answer and a predicted \
answer. Does the predicted answer match the gold answer at least partially, i.e. does it state \
some of the gold answer's content (a correct part of a list, the right entity with a wrong \
detail, an equivalent phrasing) without being about something else entirely?

Question: {question}
Gold answer: {target}
Predicted answer: {prediction}

Reply with the single word YES or NO and nothing else."""
"""A DeepResearcher-style partial-match (PM) check, judged by the same LLM."""

_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def parse_yes_no(reply: str) -> bool | None:
    """True/False for a reply saying exactly one of YES / NO (any case); None otherwise."""
    found = {w.lower() for w in _YES_NO.findall(reply)}
    return (found.pop() == "yes") if len(found) == 1 else None


@dataclass(frozen=True)
class PartialMatch:
    """Token F1 and the judge's partial-match flag (None: the reply was unparseable)."""

    f1: float
    partial_match: bool | None
    raw: str


@dataclass(frozen=True)
class JudgeConfig:
    """Settings of the LLM judge."""

    max_tokens: int = 16
    """Completion budget (the judge is asked for one letter)."""


class OpenAIJudge:
    """SimpleQA grader over a chat client; also an `agent.judge.LLMJudge` (1.0 iff CORRECT)."""

    def __init__(self, client: ChatClient, cfg: JudgeConfig = JudgeConfig()) -> None:
        self.client = client
        self.cfg = cfg

    @classmethod
    def from_url(cls, base_url: str, model: str, api_key: str = "EMPTY") -> OpenAIJudge:
        """A judge on any OpenAI-compatible chat endpoint (temperature 0)."""
        return cls(OpenAIChatClient(OpenAIChatConfig(base_url, model, api_key)))

    def grade_simpleqa(self, question: str, prediction: str, gold: str) -> SimpleQAGrade:
        """One call to the judge; an unparseable reply is labelled UNPARSED (never correct)."""
        prompt = SIMPLEQA_INSTRUCTIONS.format(question=question, target=gold, prediction=prediction)
        messages: list[Message] = [{"role": "user", "content": prompt}]
        reply = self.client.chat(messages, max_tokens=self.cfg.max_tokens).content
        return SimpleQAGrade(parse_simpleqa_letter(reply), reply)

    def grade_partial_match(self, question: str, prediction: str, gold: str) -> PartialMatch:
        """DeepResearcher-style: HotpotQA token F1 plus the judged partial-match flag."""
        prompt = PARTIAL_MATCH_INSTRUCTIONS.format(
            question=question, target=gold, prediction=prediction
        )
        messages: list[Message] = [{"role": "user", "content": prompt}]
        reply = self.client.chat(messages, max_tokens=self.cfg.max_tokens).content
        return PartialMatch(f1_score(prediction, gold), parse_yes_no(reply), reply)

    def grade(self, question: str, prediction: str, gold: Sequence[str]) -> float:
        """`LLMJudge`: 1.0 if CORRECT against any gold, else 0.0; raises `JudgeParseError` on an
        unparsed reply (`JudgeParseError`)."""
        assert gold, "need at least one gold answer"
        grade = self.grade_simpleqa(question, prediction, " OR ".join(gold))
        if grade.label == "UNPARSED":
            raise JudgeParseError(f"judge {self.client.model_id!r} gave no grade: {grade.raw!r}")
        return float(grade.correct)


def score_answer(
    prediction: str,
    golds: Sequence[str],
    question: str,
    llm_judge: LLMJudge | None,
    scorer: Literal["hotpotqa", "gaia", "simpleqa", "deepresearcher"],
) -> JudgeResult:
    """The task's scores as its benchmark defines them: HotpotQA EM/F1 (reward = F1), GAIA's
    quasi-exact match as `em` (reward = 1 / 0), or SimpleQA's judged label (reward = 1 iff
    CORRECT; needs an `OpenAIJudge`; an unparsed reply is labelled UNPARSED, reward 0), or
    DeepResearcher's token F1 (the reward) with the judged partial match as the label
    (PARTIAL_MATCH / NO_MATCH / UNPARSED; needs an `OpenAIJudge`). Any other LLM judge's
    verdict, when given, is the reward."""
    if scorer == "simpleqa":
        if not isinstance(llm_judge, OpenAIJudge):
            raise ValueError("SimpleQA is graded by an LLM judge: pass an OpenAIJudge")
        base = judge_answer(prediction, list(golds), question, None)
        grade = llm_judge.grade_simpleqa(question, prediction, " OR ".join(golds))
        ok = float(grade.correct)
        return JudgeResult(base.em, base.f1, ok, ok, grade.label)
    if scorer == "deepresearcher":
        if not isinstance(llm_judge, OpenAIJudge):
            raise ValueError("DeepResearcher's PM is judged by an LLM: pass an OpenAIJudge")
        base = judge_answer(prediction, list(golds), question, None)
        pm = llm_judge.grade_partial_match(question, prediction, " OR ".join(golds))
        label = {True: "PARTIAL_MATCH", False: "NO_MATCH", None: "UNPARSED"}[pm.partial_match]
        return JudgeResult(base.em, base.f1, base.f1, None, label)
    judged = judge_answer(prediction, list(golds), question, llm_judge)
    if scorer == "hotpotqa":
        return judged
    em = max(float(gaia_score(prediction, g).correct) for g in golds)
    reward = judged.llm_verdict if judged.llm_verdict is not None else em
    return JudgeResult(em, judged.f1, reward, judged.llm_verdict)
