"""Service settings read from `MEMENTO_*` environment variables (pydantic-settings).

Every field maps to `MEMENTO_<FIELD>` (case-insensitive), e.g. `MEMENTO_API_KEY`,
`MEMENTO_READ_API_KEY`, `MEMENTO_PRODUCTION`, `MEMENTO_DB_PATH`. `check_startup()` is the one
gate that refuses an insecure production configuration.

Model settings are not re-declared here: a fresh (untrained) model is the `recsys.config.CoreConfig`
of `fresh`, the preset `MEMENTO_PRESET` (default `online`, `recsys.presets.online`) with any
field overridden by `MEMENTO_FRESH__<PART>__<FIELD>`, e.g. `MEMENTO_FRESH__RECOMMEND__SCORER=items`,
`MEMENTO_FRESH__LEARNER__POLICY__ALPHA=0.2`, `MEMENTO_FRESH__TEXT__KIND=hashing`. A variable of
the retired flat names (`RETIRED_ENV`, e.g. `MEMENTO_SCORER`) is refused with its new name.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.config import CoreConfig, config_to_dict
from recsys.presets import PRESETS, derive, online, preset
from serving.errors import InsecureSettingsError

DEFAULT_API_KEY = "memento-dev-key"
"""Well-known development write key; accepted only outside production mode."""
DEFAULT_READ_API_KEY = "memento-dev-read-key"
"""Well-known development read key; accepted only outside production mode."""

DEFAULT_CORE = "serving.core:build_core"
"""Factory path of the serving core (the default)."""
CHAMPION_URI = "models:/memento-recsys@champion"
"""The model `memento train` registers; served by default when the registry has it."""

RETIRED_ENV: dict[str, str] = {
    "MEMENTO_SCORER": "MEMENTO_FRESH__RECOMMEND__SCORER",
    "MEMENTO_MODE": "MEMENTO_FRESH__LEARNER__MODE",
    "MEMENTO_GAMMA": "MEMENTO_FRESH__LEARNER__GAMMA",
    "MEMENTO_ALPHA": "MEMENTO_FRESH__LEARNER__POLICY__ALPHA",
    "MEMENTO_DWELL_WEIGHT": "MEMENTO_FRESH__REWARD__DWELL_WEIGHT",
    "MEMENTO_EXPLORE_ITEMS": "MEMENTO_FRESH__RECOMMEND__N_EXPLORE",
    "MEMENTO_POPULARITY_HALF_LIFE_HOURS": "MEMENTO_FRESH__RECOMMEND__POP_HALF_LIFE_HOURS",
    "MEMENTO_TEXT_ENCODER": "MEMENTO_FRESH__TEXT__KIND",
    "MEMENTO_TEXT_DIM": "MEMENTO_FRESH__TEXT__DIM",
    "MEMENTO_INDEX": "MEMENTO_FRESH__CASE_BANK__INDEX",
    "MEMENTO_TOP_K": "MEMENTO_FRESH__RECOMMEND__TOP_K",
    "MEMENTO_NUM_CHOSEN": "MEMENTO_FRESH__RECOMMEND__NUM_CHOSEN",
    "MEMENTO_NEIGHBOURS": "MEMENTO_FRESH__RECOMMEND__N_NEIGHBOURS",
    "MEMENTO_LEARNER_LR": "MEMENTO_FRESH__LEARNER__LR",
    "MEMENTO_ONLINE_BATCH_SIZE": "MEMENTO_FRESH__LEARNER__BATCH_SIZE",
    "MEMENTO_ONLINE_MIN_REPLAY": "MEMENTO_FRESH__LEARNER__MIN_REPLAY",
    "MEMENTO_ONLINE_REPLAY_CAPACITY": "MEMENTO_FRESH__LEARNER__REPLAY_CAPACITY",
    "MEMENTO_SEED": "MEMENTO_FRESH__LEARNER__SEED",
    "MEMENTO_LLM_CANDIDATES": "MEMENTO_FRESH__RECOMMEND__BLEND__LLM_DEPTH",
}
"""Model settings the service once re-declared under flat names -> the variable now."""
_FRESH = "fresh__"


def _known(cls: type, over: dict[str, Any], where: str) -> None:
    """Raise ValueError naming any key of `over` that is no field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    for key, value in over.items():
        if key not in hints:
            raise ValueError(f"{where}__{key.upper()}: {cls.__name__} has no field {key!r}")
        if isinstance(value, dict) and dataclasses.is_dataclass(hints[key]):
            _known(hints[key], value, f"{where}__{key.upper()}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s leaves written into it (nested dicts merged)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class ServingSettings(BaseSettings):
    """All knobs of the online service; the environment prefix is `MEMENTO_`."""

    model_config = SettingsConfigDict(
        env_prefix="MEMENTO_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    api_key: SecretStr = SecretStr(DEFAULT_API_KEY)
    """Write key: bearer key of feedback, events and all memory/admin routes (also accepted on
    the read route)."""
    read_api_key: SecretStr = SecretStr(DEFAULT_READ_API_KEY)
    """Read key: bearer key of `POST /v1/recommend` (which logs a decision per call)."""
    public_recommend: bool = False
    """Public mode: `POST /v1/recommend` takes no key at all (and the read key is unused)."""
    production: bool = False
    """Production mode: refuse to start with a default or empty write or read key."""
    host: str = "127.0.0.1"
    """Interface `memento serve` binds to."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port `memento serve` binds to."""
    db_path: Path = Path("serving_state/memento.sqlite3")
    """SQLite file (WAL) holding decisions, feedback, events and the case log."""
    store_url: str | None = None
    """PostgreSQL URL (`postgresql://...`) of a shared store; None: the embedded SQLite file
    `db_path` (one process only). More than one replica needs it (`memento serve --replicas`)."""
    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes of `memento serve` (`--workers`); more than one needs
    `store_url`: the workers follow one learner process (`serving.workers`)."""
    sync_interval_ms: float = Field(default=150.0, gt=0.0)
    """Replicas (`--replicas N`) and workers (`--workers N`) poll the shared store for a new
    model version and the change feed this often."""
    decision_flush_ms: float = Field(default=20.0, ge=0.0)
    """Decisions are written behind the response, in batches, within this many ms (0: in
    the request). Feedback writes its decision first, so acknowledged feedback stays durable."""
    max_body_bytes: int = Field(default=256 * 1024, ge=1)
    """Largest accepted request body; larger bodies get 413."""
    queue_size: int = Field(default=1024, ge=1)
    """Capacity of the online-learner queue; a full queue answers 503 with Retry-After."""
    retry_after_s: int = Field(default=1, ge=1)
    """Seconds advertised in `Retry-After` when the learner queue is full."""
    learner_linger_ms: float = Field(default=50.0, ge=0.0)
    """The learner thread, once it takes a feedback, waits up to this many ms for more before
    applying them as one batch (0: whatever is queued at once). A batch shares its gradient
    steps and its writes, so a feedback costs a fraction of its cost alone (`memento bench
    serving`, items scorer: 13.8 ms of learner CPU per feedback one at a time, 1.6 ms in
    batches of 32), which the requests would otherwise wait for; the lag it adds is bounded
    by the linger."""
    checkpoint_every: int = Field(default=100, ge=1)
    """Checkpoint the core (and mark feedback applied) after this many learner updates."""
    checkpoint_dir: Path | None = None
    """Where the core writes checkpoints; None puts them beside the database."""
    model_uri: str | None = CHAMPION_URI
    """MLflow registry URI of the model to serve. The default serves what `memento train`
    registered when the registry has it (else a local snapshot, else a fresh model over
    `items_path`); set explicitly, a missing model fails the start; `none` disables it."""
    case_capacity: int | None = Field(default=None, ge=0)
    """Cases the served bank keeps; past it the oldest leave (hand-written ones never do) and
    leave the case log too. None: the model's bank size at load, at least 10,000 (the bank
    then never outgrows what it was trained with); 0: unbounded. The bank also keeps at most
    this many cases' bytes at the loaded cases' mean size (`serving.case_capacity`)."""
    memory: bool = True
    """Write a case per feedback into the bank (False: the no-memory ablation; the policy still
    learns, but retrieval never proposes what other users acted on)."""
    live_cooccurrence: bool = True
    """Item co-occurrence and succession counts grow with the served events (the item-kNN
    evidence of the items scorer), refitted every `cooccurrence_refit_every` events."""
    cooccurrence_refit_every: int = Field(default=200, ge=1)
    """Served events between two refits of the live co-occurrence."""
    cooccurrence_max_events: int = Field(default=500_000, ge=1)
    """Cap: the live co-occurrence counts the latest this many served events (a sliding
    window, about 24 bytes each plus the refitted counts; serving/README.md, memory budget)."""
    policy: Literal["sample", "greedy"] = "sample"
    """How the case policy chooses: sample from softmax(Q/alpha) (exploration, logged
    propensities) or greedy (what offline evaluation measures; the parity check uses it)."""
    mlflow_uri: str | None = None
    """MLflow tracking/registry URI (None: env `MEMENTO_MLFLOW_URI`, else the repo sqlite)."""
    core: str = DEFAULT_CORE
    """`module:factory` building the core; factory(settings, store) -> RecommenderBackend."""
    recent_events_limit: int = Field(default=50, ge=0)
    """How many stored events per user are merged into the state at recommend time."""
    malloc_arena_max: int = Field(default=2, ge=0)
    """glibc malloc arenas of the process, with the mmap threshold fixed at 128 KiB (0: leave
    malloc as it is): freed request and update arrays go back to the system instead of staying
    in per-thread arenas (`serving.malloc`; serving/README.md, memory budget)."""
    malloc_mmap_threshold_kib: int = Field(default=1024, ge=1, le=32 * 1024)
    """With `malloc_arena_max`: blocks of at least this many KiB are mapped and unmapped (a
    fixed threshold). At 128 (glibc's initial value) each recommend maps ~16 arrays of 144-160
    KiB, whose page faults cost 0.8-3.7 ms of system CPU per recommend (`serving.malloc`)."""
    malloc_trim_s: float = Field(default=10.0, ge=0.0)
    """Return the heap's free pages to the system (glibc `malloc_trim`) this often (0: never;
    `serving.malloc.Trimmer`)."""
    blas_threads: int = Field(default=1, ge=0)
    """BLAS threads per process (1: request-level concurrency, no oversubscription; 0: leave)."""
    items_path: Path | None = None
    """Canonical `items.parquet` (item_id, title); None: the model's own, else ids as titles."""
    llm: Literal["none", "smollm2-135m", "qwen2.5-0.5b"] = "none"
    """Frozen LLM that re-ranks the candidate items (none: policy-weighted scores)."""
    updates_per_feedback: int = Field(default=2, ge=0, le=64)
    """Gradient steps of the online learner per applied feedback."""
    snapshot_every_cases: int = Field(default=10_000, ge=1)
    """Write a case-bank snapshot at a checkpoint once this many cases changed since the last."""
    demo_apply_delay_s: float = Field(default=0.0, ge=0.0)
    """Test knob: the core sleeps this long in each feedback update (simulates a slow core)."""
    preset: str = "online"
    """The `recsys.presets` preset a fresh model starts from (`online`, `offline-replay`)."""
    fresh: CoreConfig = Field(default_factory=online)
    """A FRESH (untrained) model: `preset` with the fields given as
    `MEMENTO_FRESH__<PART>__<FIELD>` (or as a dict) written over it; a `CoreConfig` passed in
    is taken whole. A trained bundle brings its own, except the online learner's batch size,
    warm-up and replay capacity (`learner.batch_size`, `learner.min_replay`,
    `learner.replay_capacity`) and its list draw (`learner.policy.list_draw`,
    `learner.policy.explore_slots`), which every served model takes from here."""

    @model_validator(mode="before")
    @classmethod
    def _fresh_model(cls, data: Any) -> Any:
        """Refuse the retired flat variables and arguments; build `fresh` from `preset` and its
        overrides."""
        retired = sorted(k for k in os.environ if k.upper() in RETIRED_ENV)
        if retired:
            moved = ", ".join(f"{k} -> {RETIRED_ENV[k.upper()]}" for k in retired)
            raise ValueError(f"retired model variables (set the new ones instead): {moved}")
        if not isinstance(data, dict):
            return data
        named = sorted(k for k in data if f"MEMENTO_{k.upper()}" in RETIRED_ENV)
        if named:
            moved = ", ".join(f"{k} -> {RETIRED_ENV[f'MEMENTO_{k.upper()}']}" for k in named)
            raise ValueError(f"retired model settings (set `fresh` instead): {moved}")
        data = dict(data)
        over = data.pop("fresh", None)
        if isinstance(over, CoreConfig):
            data["fresh"] = over
            return data
        over = dict(over or {})
        for key in [k for k in data if k.lower().startswith(_FRESH)]:  # flat `fresh__a__b` keys
            node = over
            *path, leaf = key.lower().removeprefix(_FRESH).split("__")
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = data.pop(key)
        name = str(data.get("preset", "online"))
        if name not in PRESETS:
            raise ValueError(f"unknown MEMENTO_PRESET {name!r}; choose one of {sorted(PRESETS)}")
        _known(CoreConfig, over, "MEMENTO_FRESH")
        scorer = over.get("recommend", {}).get("scorer")
        data["fresh"] = _merge(config_to_dict(preset(name, scorer)), over)  # pydantic validates
        return data

    @field_validator("fresh", mode="after")
    @classmethod
    def _derived(cls, core: CoreConfig) -> CoreConfig:
        """The fresh model's scorer-dependent fields follow its scorer (`recsys.presets.derive`)."""
        return derive(core)

    def resolved_checkpoint_dir(self) -> Path:
        """The checkpoint folder, defaulting to `<db folder>/checkpoints`."""
        return self.checkpoint_dir or self.db_path.parent / "checkpoints"

    def check_startup(self) -> None:
        """Raise `InsecureSettingsError` for production with a default or empty write/read key."""
        if not self.production:
            return
        keys = [("MEMENTO_API_KEY", self.api_key, "")]
        if not self.public_recommend:
            hint = " (or set MEMENTO_PUBLIC_RECOMMEND=true for an open recommend route)"
            keys.append(("MEMENTO_READ_API_KEY", self.read_api_key, hint))
        for name, secret, hint in keys:
            key = secret.get_secret_value()
            if not key.strip() or key in (DEFAULT_API_KEY, DEFAULT_READ_API_KEY):
                raise InsecureSettingsError(
                    f"refusing to start: MEMENTO_PRODUCTION is set but {name} is empty or a "
                    f"default development key{hint}"
                )
