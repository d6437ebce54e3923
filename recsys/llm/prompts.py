"""Build ranking prompts from the state, the chosen cases and the candidates.

A token budget is enforced by dropping, in order: old history beyond the last 3 items, the
lowest-ranked cases (down to one), older history (down to one), the last case. Candidates
are NEVER dropped; if they alone exceed the budget the prompt goes over it (flagged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recsys.llm.templates import TEMPLATE_VERSION, TEMPLATES, Template

__all__ = [
    "BuiltPrompt",
    "CaseExample",
    "HistoryItem",
    "PromptBuilder",
    "PromptConfig",
    "approx_token_count",
    "detect_lang",
    "explanation_prompt",
    "neutral_prompt",
]


@dataclass(frozen=True)
class HistoryItem:
    """One recent interaction shown in the state summary."""

    title: str
    """Item text (title or category)."""
    action: str = "click"
    """One of click / collect / cart / alipay (unknown actions are shown verbatim)."""


@dataclass(frozen=True)
class CaseExample:
    """A chosen case shown as an in-context example."""

    state_text: str
    """Short summary of that past state (e.g. the items the user had just seen)."""
    item_title: str
    """The item recommended or acted on in that case."""
    positive: bool
    """True: it worked (imitate); False: it failed (avoid)."""


@dataclass(frozen=True)
class PromptConfig:
    """Prompt construction settings."""

    lang: str = "zh"
    """Template language: "zh" or "en"."""
    max_prompt_tokens: int = 320
    """Token budget of the whole prompt (candidates are kept even when over it)."""
    max_history: int = 10
    """Most recent items shown at most."""
    max_cases: int = 4
    """Cases shown at most (in the given order, best first)."""
    list_candidates: bool = False
    """Also list the candidates in the prompt body. Off by default: small models then favour
    the first-listed candidate (position bias); candidates are scored after the cue anyway."""


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt ready for `FrozenLLM.rank(text, candidates)`."""

    text: str
    """The prompt; candidates are scored as the line that follows it."""
    candidates: tuple[str, ...]
    """The candidate texts (all of them, in the caller's order)."""
    version: str
    """Template version."""
    lang: str
    """Template language."""
    n_history: int
    """History items kept after truncation."""
    n_cases: int
    """Cases kept after truncation."""
    n_tokens: int
    """Prompt length by the builder's token counter."""
    over_budget: bool
    """True when even the minimal prompt (with every candidate) exceeds the budget."""


def approx_token_count(text: str) -> int:
    """Tokenizer-free estimate: one per CJK character, one per 4 other characters."""
    cjk = sum(1 for ch in text if "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef")
    return cjk + (len(text) - cjk + 3) // 4


def detect_lang(text: str) -> str:
    """ "zh" if the text contains CJK characters, else "en"."""
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def explanation_prompt(prompt: str, item: str, lang: str | None = None) -> str:
    """The ranking prompt followed by the item and a cue for a one-sentence reason."""
    template = TEMPLATES[lang or detect_lang(prompt)]
    return f"{prompt}{item}{template.explain_cue}"


def neutral_prompt(prompt: str) -> str:
    """The content-free prompt used for calibration: the prompt's last line (its cue), with
    the trailing newline kept. For a `PromptBuilder` prompt this is the template's cue line
    alone: no user profile, history, cases or candidates. A single-line prompt is returned
    unchanged (it has no context to remove)."""
    body, newline = (prompt[:-1], "\n") if prompt.endswith("\n") else (prompt, "")
    return body.rsplit("\n", 1)[-1] + newline


class PromptBuilder:
    """Renders `BuiltPrompt`s within a token budget."""

    def __init__(
        self, config: PromptConfig | None = None, count_tokens: Callable[[str], int] | None = None
    ) -> None:
        self.config = config or PromptConfig()
        if self.config.lang not in TEMPLATES:
            raise ValueError(f"unknown prompt language {self.config.lang!r}")
        self.template: Template = TEMPLATES[self.config.lang]
        self.count_tokens = count_tokens or approx_token_count

    def _render(
        self,
        profile: str,
        history: Sequence[HistoryItem],
        cases: Sequence[CaseExample],
        candidates: Sequence[str],
    ) -> str:
        t = self.template
        lines = [t.intro]
        if profile:
            lines.append(f"{t.profile}{profile}")
        if history:
            shown = [f"{t.actions.get(h.action, h.action)}「{h.title}」" for h in history]
            if self.config.lang == "en":
                shown = [f"{t.actions.get(h.action, h.action)} {h.title}" for h in history]
            lines += [t.history, t.separator.join(shown)]
        for heading, wanted in ((t.positive, True), (t.negative, False)):
            chosen = [c for c in cases if c.positive is wanted]
            if chosen:
                lines.append(heading)
                lines += [t.case_line.format(state=c.state_text, item=c.item_title) for c in chosen]
        if self.config.list_candidates and candidates:
            lines += [t.candidates, t.separator.join(candidates)]
        lines.append(t.cue)
        return "\n".join(lines) + "\n"

    def build(
        self,
        history: Sequence[HistoryItem],
        cases: Sequence[CaseExample],
        candidates: Sequence[str],
        profile: str = "",
    ) -> BuiltPrompt:
        """Render a prompt; history oldest first, cases best first; candidates always kept."""
        hist = list(history)[-self.config.max_history :] if self.config.max_history else []
        kept = list(cases)[: self.config.max_cases]
        budget = self.config.max_prompt_tokens
        text = self._render(profile, hist, kept, candidates)
        while self.count_tokens(text) > budget:
            if len(hist) > 3:
                hist = hist[1:]
            elif len(kept) > 1:
                kept = kept[:-1]
            elif len(hist) > 1:
                hist = hist[1:]
            elif kept:
                kept = []
            elif hist:
                hist = []
            elif profile:
                profile = ""
            else:
                break
            text = self._render(profile, hist, kept, candidates)
        n_tokens = self.count_tokens(text)
        return BuiltPrompt(
            text=text,
            candidates=tuple(candidates),
            version=TEMPLATE_VERSION,
            lang=self.config.lang,
            n_history=len(hist),
            n_cases=len(kept),
            n_tokens=n_tokens,
            over_budget=n_tokens > budget,
        )
