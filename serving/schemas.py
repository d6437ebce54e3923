"""Request and response models of the `/v1` API (pydantic v2, strict bounds on everything)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

Action = Literal["click", "collect", "cart", "alipay"]
"""Tmall behaviour types; also the feedback actions."""

ID_MAX_LENGTH = 128
"""Longest user, item, case or decision id (characters)."""
ID_PATTERN = r"^[^\x00-\x1F\x7F-\x9F\u2028\u2029]*$"
"""Printable ids: no C0/C1 control characters, DEL or line/paragraph separators. Both the
validator and the OpenAPI schema use it, so clients and fuzzers see the real rule. (Lone
surrogates are not text: pydantic refuses them before this rule, and JSON Schema regex
engines cannot express them.)"""
_ID_RE = re.compile(ID_PATTERN)


def _utf8(value: str) -> str:
    """Reject strings SQLite cannot store (lone surrogates) with a clear message."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


def _printable(value: str) -> str:
    """Reject ids with control characters or line separators."""
    if not _ID_RE.fullmatch(value):
        raise ValueError("must be printable text: no control characters or line separators")
    return _utf8(value)


_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": ID_MAX_LENGTH,
    "pattern": ID_PATTERN,
}
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ID_MAX_LENGTH),
    AfterValidator(_printable),
    WithJsonSchema(_ID_SCHEMA),
]
"""User, item, case and decision identifiers: 1..128 printable characters."""
ShortText = Annotated[str, StringConstraints(max_length=256), AfterValidator(_utf8)]
Timestamp = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]
"""Unix seconds."""


def _integral(value: object) -> object:
    """JSON has one number type: `61.0` is the integer 61 (JSON Schema agrees); `61.5` is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Dwell = Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False)]
"""Seconds spent on an item."""
Count = Annotated[int, Field(ge=1, le=100), BeforeValidator(_integral)]
"""How many items to recommend."""
Context = Annotated[
    dict[Id, ShortText],
    Field(max_length=32),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": 32,
            "propertyNames": _ID_SCHEMA,
            "additionalProperties": {"type": "string", "maxLength": 256},
        }
    ),
]
"""Request context: up to 32 id-like keys with short text values."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Model):
    """Request bodies are strict: JSON types as documented, no coercion (`"3"`, `true` as 1)."""

    model_config = ConfigDict(strict=True)


class EventIn(_Request):
    """One interaction of a user with an item."""

    item_id: Id
    action: Action = "click"
    ts: Timestamp | None = None


class RecommendRequest(_Request):
    """Ask for `n` items for a user; unknown users get a cold-start answer."""

    user_id: Id
    n: Count = 10
    context: Context | None = None
    recent_events: Annotated[list[EventIn], Field(max_length=1000)] | None = None
    exclude_items: Annotated[list[Id], Field(max_length=1000)] | None = None
    explain: bool = False
    at: Timestamp | None = None
    """Decision time (unix seconds) for replaying a past decision: the state's time decay,
    case ages, the cases retrievable (only those known before it) and popularity are taken
    as of this time. None: now."""


class ItemOut(_Model):
    """One recommended item."""

    item_id: str
    title: str
    score: float
    cases: list[str] = []
    """Ids of the chosen cases that proposed this item (empty: popularity, neighbours,
    co-occurrence)."""
    propensity: float | None = None
    """Logged propensity in (0, 1]: P(this item at this position | state) under the policy
    that drew the list (1.0 for a greedy policy); with the slotted explorer (the default,
    `recsys.rl.slotted`) position 0's is that marginal and a later position's is conditional
    on the items above it (1.0 for a greedy slot); null where none is defined (cold start,
    popularity fill-in, LLM re-ranked head, the case scorer). `memento logs export` reads the
    stored copy."""
    explored: bool = False
    """The policy placed this item in an exploration slot (`recsys.rl.slotted`: SquareCB over
    the items not placed above it); the other drawn items follow the policy's score order."""


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


class FeedbackRequest(_Request):
    """A user's response to one item of a decision; `idempotency_key` makes retries safe."""

    decision_id: Id
    item_id: Id
    action: Action
    dwell_seconds: Dwell | None = None
    idempotency_key: Id


class FeedbackAccepted(_Model):
    """202 answer: durably stored and queued (or a duplicate of an earlier key)."""

    feedback_id: int
    duplicate: bool


class Impression(_Request):
    """One shown item of a decision and what the user did with it (nothing: `action` null)."""

    item_id: Id
    action: Action | None = None
    """The deepest action on the item; null: shown and not acted on (zero-reward evidence)."""
    dwell_seconds: Dwell | None = None


class OutcomeRequest(_Request):
    """Close a decision: every item it showed, each once, the acted ones with their action.
    The decision id is the idempotency key: a decision closes once, a repeat changes nothing."""

    decision_id: Id
    impressions: Annotated[list[Impression], Field(min_length=1, max_length=100)]


class ImpressionOut(_Model):
    """One shown item as the outcome recorded it."""

    item_id: str
    position: int
    """0-based position in the decision's list."""
    action: str | None
    """The action, or null (shown, not acted on)."""
    propensity: float | None
    """The propensity logged with the decision for this position (`ItemOut.propensity`)."""
    feedback_id: int
    """The stored feedback row of this item (its `idempotency_key` derives from the decision)."""


class OutcomeAccepted(_Model):
    """202 answer: every impression durably stored and queued (or the decision was already
    closed: `duplicate`, the same rows)."""

    decision_id: str
    impressions: list[ImpressionOut]
    duplicate: bool


class EventsRequest(_Request):
    """Append interactions to a user's history (updates their state)."""

    user_id: Id
    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]


class EventsAccepted(_Model):
    """How many events were stored."""

    stored: int


class CaseIn(_Request):
    """Write a case by hand (memory editing): the state it was taken in and its outcome."""

    user_id: Id
    items: Annotated[list[Id], Field(min_length=1, max_length=100)]
    reward: Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)] = 1.0
    recent_events: Annotated[list[EventIn], Field(max_length=200)] | None = None
    context: Context | None = None


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
    message: str | None = None
    """Why the service is not ready (and what to run), when it is not."""
    model_version: str | None = None
    bank_size: int | None = None
    queue_depth: int | None = None


class ErrorDetail(_Model):
    """One failed constraint of a request (validation errors only)."""

    loc: list[str | int]
    """Where: `body`/`query`/`path`, then field names and list indexes."""
    msg: str
    """What is wrong, in words."""
    type: str
    """Machine-readable error type (pydantic's)."""


class ErrorOut(_Model):
    """Shape of every error answer."""

    error: str
    """Machine-readable code, e.g. `validation_error`, `unauthorized`, `not_ready`."""
    message: str
    """Human-readable explanation."""
    details: list[ErrorDetail] | None = None
    """Each failed constraint (validation errors only)."""
