"""Oracle tests of the benchmarks' own scorers: GAIA quasi-exact match, the SimpleQA LLM grader
(against the scripted OpenAI-compatible server) and `memento agent score`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent.errors import AgentError
from agent.judge import exact_match, f1_score, normalize_answer
from agent.scorers import (
    OpenAIJudge,
    SimpleQATally,
    gaia_score,
    parse_simpleqa_letter,
    parse_yes_no,
)
from agent.scripted_server import Rule, Script, ScriptedLLMServer, ScriptedReply
from memento.cli import app


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        ("35", "3.5", False),
        ("42.0", "42", True),
        ("$1,000", "1000", True),
        ("50%", "50", True),
        ("12 km", "12", True),
        ("3.5kg", "3.5", True),
        ("35 to 40", "35", False),
        ("about 42", "42", False),
        ("", "0", False),
    ],
)
def test_gaia_numbers_compare_as_floats(prediction: str, gold: str, correct: bool) -> None:
    """A numeric gold is compared as a float after `$`, `%`, `,` and a unit are removed."""
    got = gaia_score(prediction, gold)
    assert got.kind == "number"
    assert got.correct is correct, got


def test_gaia_number_normalised_forms() -> None:
    """The verdict carries the compared forms ('nan' when the prediction is not a number)."""
    assert gaia_score("35", "3.5").prediction_normalized == "35.0"
    assert gaia_score("35", "3.5").gold_normalized == "3.5"
    assert gaia_score("many", "7").prediction_normalized == "nan"


def test_gaia_lists_elementwise() -> None:
    """A gold with , or ; is a list: same length, numbers as numbers, strings normalised."""
    ok = gaia_score("1, 2, 3", "1,2,3")
    assert (ok.correct, ok.kind, ok.prediction_normalized) == (True, "list", "1.0;2.0;3.0")
    assert gaia_score("1.0; 2; 3", "1,2,3").correct
    assert not gaia_score("1, 2", "1,2,3").correct  # length differs
    assert not gaia_score("1, 3, 2", "1,2,3").correct  # order matters
    assert gaia_score("Apple, Banana Split", "apple,banana split").correct
    assert not gaia_score("35, b", "3.5, b").correct


def test_gaia_strings_ignore_case_space_punctuation() -> None:
    """A plain string gold compares lowercase, without whitespace and punctuation."""
    g = gaia_score("The  Beatles!", "the beatles")
    assert (g.correct, g.kind, g.prediction_normalized, g.gold_normalized) == (
        True,
        "string",
        "thebeatles",
        "thebeatles",
    )
    assert gaia_score("St. Petersburg", "st petersburg").correct
    assert not gaia_score("Beatles", "the beatles").correct  # articles are not dropped


def test_hotpotqa_keeps_decimal_points() -> None:
    """HotpotQA EM no longer equates '35' with '3.5'; '42.0' equals '42'; other dots go."""
    assert exact_match("35", "3.5") == 0.0
    assert exact_match("42.0", "42") == 1.0
    assert exact_match("3.50 m", "3.5 m") == 1.0
    assert normalize_answer("It is 3.5.") == "it is 3.5"
    assert normalize_answer("U.S.A.") == "usa"
    assert f1_score("3.5 metres", "35 metres") == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("A", "CORRECT"),
        ("**B**", "INCORRECT"),
        ("C.", "NOT_ATTEMPTED"),
        ("(A)", "CORRECT"),
        ("Grade: B", "INCORRECT"),
        ("The answer is C", "NOT_ATTEMPTED"),
        ("NOT_ATTEMPTED", "NOT_ATTEMPTED"),
        ("INCORRECT", "INCORRECT"),
        ("I cannot grade this.", "UNPARSED"),
        ("correct or incorrect?", "UNPARSED"),
        ("", "UNPARSED"),
    ],
)
def test_parse_simpleqa_letter(reply: str, label: str) -> None:
    """Letters and label words parse; no or conflicting grades give UNPARSED, never CORRECT."""
    assert parse_simpleqa_letter(reply) == label


def _script() -> Script:
    return Script(
        rules=(
            Rule("Predicted answer: Paris", ScriptedReply(content="A")),
            Rule("Predicted answer: Lyon", ScriptedReply(content="B")),
            Rule("Predicted answer: I don't know", ScriptedReply(content="C")),
        ),
        default=ScriptedReply(content="Hmm, hard to say."),
    )


def test_simpleqa_judge_counts_three_labels_and_unparsed() -> None:
    """Over a real HTTP endpoint the judge's letters become labels; the tally counts them."""
    with ScriptedLLMServer(_script()) as srv:
        judge = OpenAIJudge.from_url(srv.base_url, "scripted")
        grades = [
            judge.grade_simpleqa("Capital of France?", p, "Paris")
            for p in ("Paris", "Paris", "Lyon", "I don't know", "Marseille")
        ]
        sent = srv.requests[0]["messages"][-1]["content"]
    assert [g.label for g in grades] == [
        "CORRECT",
        "CORRECT",
        "INCORRECT",
        "NOT_ATTEMPTED",
        "UNPARSED",
    ]
    assert "Gold target: Paris" in sent and "Question: Capital of France?" in sent
    t = SimpleQATally.of(grades)
    assert t.counts == {"CORRECT": 2, "INCORRECT": 1, "NOT_ATTEMPTED": 1, "UNPARSED": 1}
    assert t.overall_correct == pytest.approx(2 / 5)
    assert t.correct_given_attempted == pytest.approx(2 / 3)
    assert t.f_score == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))


def test_simpleqa_judge_as_llm_judge_raises_on_unparsed() -> None:
    """As an `LLMJudge` it returns 1.0/0.0 and raises a named error on an unparseable reply."""
    with ScriptedLLMServer(_script()) as srv:
        judge = OpenAIJudge.from_url(srv.base_url, "scripted")
        assert judge.grade("Capital of France?", "Paris", ["Paris"]) == 1.0
        assert judge.grade("Capital of France?", "Lyon", ["Paris"]) == 0.0
        with pytest.raises(AgentError, match="no grade"):
            judge.grade("Capital of France?", "Marseille", ["Paris"])


def test_partial_match_judge_with_f1() -> None:
    """The PM check reuses the judge with its own instruction; F1 is the HotpotQA token F1."""
    script = Script(
        rules=(
            Rule("Predicted answer: Marie Curie", ScriptedReply(content="YES")),
            Rule("Predicted answer: Einstein", ScriptedReply(content="no.")),
        ),
        default=ScriptedReply(content="yes and no"),
    )
    with ScriptedLLMServer(script) as srv:
        judge = OpenAIJudge.from_url(srv.base_url, "scripted")
        q, gold = "Who discovered polonium?", "Marie and Pierre Curie"
        pm = judge.grade_partial_match(q, "Marie Curie", gold)
        assert "Gold answer: Marie and Pierre Curie" in srv.requests[0]["messages"][-1]["content"]
        assert pm.partial_match is True and pm.f1 == pytest.approx(f1_score("Marie Curie", gold))
        assert judge.grade_partial_match(q, "Einstein", gold).partial_match is False
        assert judge.grade_partial_match(q, "Bohr", gold).partial_match is None
    assert parse_yes_no("Yes.") is True and parse_yes_no("") is None


def _score(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["agent", "score", *args])
    return res.exit_code, res.stdout, res.stderr


def test_cli_score_rule_based_json() -> None:
    """`memento agent score --json` prints the verdict of GAIA / HotpotQA rules."""
    code, out, _ = _score("--dataset", "gaia", "--prediction", "$1,000", "--gold", "1000", "--json")
    assert code == 0
    got = json.loads(out)
    assert got["correct"] is True and got["kind"] == "number" and got["dataset"] == "gaia"
    code, out, _ = _score("--dataset", "hotpotqa", "--prediction", "35", "--gold", "3.5", "--json")
    assert code == 0
    got = json.loads(out)
    assert got["correct"] is False and got["em"] == 0.0


def test_cli_score_simpleqa_needs_judge_url_then_uses_it() -> None:
    """simpleqa without --judge-url exits 2 with a message; with it the judge's label prints."""
    code, out, err = _score("--dataset", "simpleqa", "--prediction", "Paris", "--gold", "Paris")
    assert code == 2 and "--judge-url" in err and out == ""
    with ScriptedLLMServer(_script()) as srv:
        code, out, _ = _score(
            "--dataset",
            "simpleqa",
            "--question",
            "Capital of France?",
            "--prediction",
            "Lyon",
            "--gold",
            "Paris",
            "--judge-url",
            srv.base_url,
            "--judge-model",
            "scripted",
            "--json",
        )
    assert code == 0
    got = json.loads(out)
    assert (got["correct"], got["label"], got["judge_reply"]) == (False, "INCORRECT", "B")


def test_cli_score_unknown_dataset_exits_2() -> None:
    """An unknown dataset name is refused with exit code 2."""
    code, _, err = _score("--dataset", "mmlu", "--prediction", "x", "--gold", "y")
    assert code == 2 and "unknown dataset" in err


def test_score_answer_uses_the_benchmarks_own_rule() -> None:
    """GAIA tasks score quasi-exact match (reward 1/0); HotpotQA keeps EM/F1 (reward = F1)."""
    from agent.scorers import score_answer

    gaia = score_answer("42.0", ["42"], "q", None, "gaia")
    assert (gaia.em, gaia.reward) == (1.0, 1.0)
    assert score_answer("35", ["3.5"], "q", None, "gaia").reward == 0.0
    hot = score_answer("the 35 km", ["3.5"], "q", None, "hotpotqa")
    assert hot.em == 0.0 and hot.reward == hot.f1
