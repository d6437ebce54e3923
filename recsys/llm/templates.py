"""Versioned prompt templates (Chinese and English).

Bump `TEMPLATE_VERSION` whenever a string changes: cached scores and logged prompts refer to it.
Every ranking prompt ends with a cue line followed by a newline, so a candidate's text is
scored as the start of a fresh line (no leading-space tokenisation issues in either language).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TEMPLATES", "TEMPLATE_VERSION", "Template"]

TEMPLATE_VERSION = "v1"


@dataclass(frozen=True)
class Template:
    """The strings of one prompt language."""

    intro: str
    """First line: the task."""
    profile: str
    """Heading before the free-text user summary."""
    history: str
    """Heading before the recent items."""
    actions: dict[str, str]
    """Action name -> verb shown next to an item."""
    positive: str
    """Heading of cases that worked (what to imitate)."""
    negative: str
    """Heading of cases that failed (what to avoid)."""
    case_line: str
    """Format of one case: {state} and {item}."""
    candidates: str
    """Heading of the candidate list."""
    cue: str
    """Last line; the candidate text follows on the next line."""
    explain_cue: str
    """Cue after `{item}` that asks for a one-sentence reason."""
    separator: str
    """Joins list entries on one line."""


TEMPLATES: dict[str, Template] = {
    "zh": Template(
        intro="你是电商推荐助手。根据用户最近的行为和过去的相似案例，推荐用户接下来最可能购买的商品。",
        profile="用户概况：",
        history="用户最近的行为（从早到晚）：",
        actions={"click": "点击", "collect": "收藏", "cart": "加购", "alipay": "购买"},
        positive="成功的相似案例（值得借鉴）：",
        negative="失败的相似案例（应当避免）：",
        case_line="- 用户{state} → 推荐「{item}」",
        candidates="候选商品：",
        cue="用户接下来最可能感兴趣的商品是：",
        explain_cue="\n推荐理由（一句话）：",
        separator="；",
    ),
    "en": Template(
        intro="You are a shopping recommender. From the user's recent actions and similar past "
        "cases, recommend the item the user is most likely to want next.",
        profile="User profile:",
        history="Recent actions (oldest first):",
        actions={
            "click": "clicked",
            "collect": "saved",
            "cart": "added to cart",
            "alipay": "bought",
        },
        positive="Similar cases that worked (follow them):",
        negative="Similar cases that failed (avoid them):",
        case_line="- user {state} -> recommended {item}",
        candidates="Candidates:",
        cue="The item this user most likely wants next is:",
        explain_cue="\nReason (one sentence):",
        separator="; ",
    ),
}
