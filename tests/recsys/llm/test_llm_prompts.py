"""Prompt templates and token-budget truncation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.llm.prompts import (
    CaseExample,
    HistoryItem,
    PromptBuilder,
    PromptConfig,
    approx_token_count,
    explanation_prompt,
    neutral_prompt,
)
from recsys.llm.templates import TEMPLATE_VERSION

HIST = [HistoryItem(f"商品{i} 手机配件", "click" if i % 2 else "alipay") for i in range(10)]
CASES = [
    CaseExample("买了手机", "手机壳", True),
    CaseExample("看了手机", "连衣裙", False),
    CaseExample("买了耳机", "耳机套", True),
]


def test_zh_prompt_has_sections_and_cue() -> None:
    """The Chinese prompt shows actions, positive and negative cases and ends with the cue."""
    built = PromptBuilder(PromptConfig(lang="zh")).build(HIST[:2], CASES, ["手机壳"])
    assert "购买「商品0 手机配件」" in built.text and "点击「商品1 手机配件」" in built.text
    assert "成功的相似案例" in built.text and "失败的相似案例" in built.text
    assert built.text.index("手机壳") < built.text.index("失败的相似案例")
    assert built.text.endswith("用户接下来最可能感兴趣的商品是：\n")
    assert built.version == TEMPLATE_VERSION and not built.over_budget


def test_en_prompt() -> None:
    """The English template renders verbs and the cue."""
    built = PromptBuilder(PromptConfig(lang="en")).build(
        [HistoryItem("phone", "alipay")], [], ["case"]
    )
    assert "bought phone" in built.text and built.text.endswith("wants next is:\n")


def test_truncation_drops_oldest_history_first() -> None:
    """Under a tight budget the newest history item and the best case survive."""
    config = PromptConfig(lang="zh", max_prompt_tokens=120)
    built = PromptBuilder(config).build(HIST, CASES, ["手机壳", "充电器"])
    assert built.n_tokens <= 120
    assert "商品9" in built.text and "商品0" not in built.text
    assert built.n_history < len(HIST)


@settings(max_examples=60, deadline=None)
@given(
    budget=st.integers(min_value=0, max_value=400),
    n_hist=st.integers(min_value=0, max_value=10),
    cands=st.lists(
        st.text(alphabet="手机壳充电器耳机abc ", min_size=1, max_size=12), min_size=1, max_size=25
    ),
)
def test_truncation_never_drops_candidates(budget: int, n_hist: int, cands: list[str]) -> None:
    """Whatever the budget, every candidate stays in the prompt and budget holds unless flagged."""
    config = PromptConfig(lang="zh", max_prompt_tokens=budget, list_candidates=True)
    built = PromptBuilder(config).build(HIST[:n_hist], CASES, cands)
    assert built.candidates == tuple(cands)
    body = built.text.split("候选商品：\n", 1)[1]
    assert all(c in body for c in cands)
    assert built.over_budget == (approx_token_count(built.text) > budget)
    if built.over_budget:
        assert built.n_history == 0 and built.n_cases == 0


def test_explanation_prompt_language() -> None:
    """The explanation cue follows the prompt's language."""
    assert explanation_prompt("用户买了手机\n", "手机壳").endswith("推荐理由（一句话）：")
    assert explanation_prompt("bought phone\n", "case").endswith("Reason (one sentence):")


def test_neutral_prompt_is_the_cue_line_only() -> None:
    """The calibration prompt of a built prompt is its template's cue line, no user content."""
    for lang, cue in (("zh", "用户接下来最可能感兴趣的商品是：\n"), ("en", "wants next is:\n")):
        built = PromptBuilder(PromptConfig(lang=lang)).build(HIST[:3], CASES, ["手机壳"])
        neutral = neutral_prompt(built.text)
        assert neutral.endswith(cue) and neutral.count("\n") == 1
        assert "商品" not in neutral.replace("商品是", "") and "手机" not in neutral
    assert neutral_prompt("Viewed: a\nViewed: ") == "Viewed: "
    assert neutral_prompt("one line\n") == "one line\n"
