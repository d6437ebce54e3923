"""Request and response models of the `/v1` API (pydantic v2, strict bounds on everything)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

Action = Literal["click", "collect", "cart", "alipay"]
"""Tmall behaviour types; also the feedback actions."""


def _utf8(value: str) -> str:
    """Reject strings SQLite cannot store (lone surrogates) with a clear message."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_utf8)]
"""User, item, case and decision identifiers."""
ShortText = Annotated[str, StringConstraints(max_length=256), AfterValidator(_utf8)]
Timestamp = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]
"""Unix seconds."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_Model):
    """One interaction of a user with an item."""

    item_id: Id
    action: Action = "click"
    ts: Timestamp | None = None


class RecommendRequest(_Model):
    """Ask for `n` items for a user; unknown users get a cold-start answer."""

    user_id: Id
    n: Annotated[int, Field(ge=1, le=100)] = 10
    context: Annotated[dict[Id, ShortText], Field(max_length=32)] | None = None
    recent_events: Annotated[list[EventIn], Field(max_length=200)] | None = None
    exclude_items: Annotated[list[Id], Field(max_length=1000)] | None = None
    explain: bool = False


class ItemOut(_Model):
    """One recommended item."""

    item_id: str
    title: str
    score: float


class CaseWeightOut(_Model):
    """A case shown to the ranker and its selection probability under the policy."""

    case_id: str
    weight: float


class RecommendResponse(_Model):
    """The decision: items, the cases behind them, and the model that chose them."""

    decision_id: str
    items: list[ItemOut]
    cases: list[CaseWeightOut]
    model_version: str
    explanation: str | None = None


class FeedbackRequest(_Model):
    """A user's response to one item of a decision; `idempotency_key` makes retries safe."""

    decision_id: Id
    item_id: Id
    action: Action
    dwell_seconds: Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False)] | None = None
    idempotency_key: Id


class FeedbackAccepted(_Model):
    """202 answer: durably stored and queued (or a duplicate of an earlier key)."""

    feedback_id: int
    duplicate: bool


class EventsRequest(_Model):
    """Append interactions to a user's history (updates their state)."""

    user_id: Id
    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]


class EventsAccepted(_Model):
    """How many events were stored."""

    stored: int


class CaseIn(_Model):
    """Write a case by hand (memory editing): the state it was taken in and its outcome."""

    user_id: Id
    items: Annotated[list[Id], Field(min_length=1, max_length=100)]
    reward: Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)] = 1.0
    recent_events: Annotated[list[EventIn], Field(max_length=200)] | None = None
    context: Annotated[dict[Id, ShortText], Field(max_length=32)] | None = None


class CaseOut(_Model):
    """A case of the memory as stored in the case log."""

    case_id: str
    user_id: str
    items: list[str]
    reward: float
    value: float
    ts: float
    source: str


class CaseList(_Model):
    """The live cases of one user."""

    cases: list[CaseOut]


class ErasureReport(_Model):
    """Rows removed by `DELETE /v1/users/{id}`."""

    events: int
    decisions: int
    feedback: int
    cases: int


class Health(_Model):
    """Liveness/readiness answer."""

    status: str
    model_version: str | None = None
    bank_size: int | None = None
    queue_depth: int | None = None


class ErrorOut(_Model):
    """Shape of every error answer."""

    error: str
    message: str
