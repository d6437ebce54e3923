"""Service settings read from `MEMENTO_*` environment variables (pydantic-settings).

Every field maps to `MEMENTO_<FIELD>` (case-insensitive), e.g. `MEMENTO_API_KEY`,
`MEMENTO_READ_API_KEY`, `MEMENTO_PRODUCTION`, `MEMENTO_DB_PATH`. `check_startup()` is the one
gate that refuses an insecure production configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.errors import InsecureSettingsError

DEFAULT_API_KEY = "memento-dev-key"
"""Well-known development write key; accepted only outside production mode."""
DEFAULT_READ_API_KEY = "memento-dev-read-key"
"""Well-known development read key; accepted only outside production mode."""

DEFAULT_CORE = "serving.core:build_core"
"""Factory path of the serving core (the default)."""
CHAMPION_URI = "models:/memento-recsys@champion"
"""The model `memento train` registers; served by default when the registry has it."""


class ServingSettings(BaseSettings):
    """All knobs of the online service; the environment prefix is `MEMENTO_`."""

    model_config = SettingsConfigDict(env_prefix="MEMENTO_", extra="ignore", frozen=True)

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
    sync_interval_ms: float = Field(default=150.0, gt=0.0)
    """Replicas (`--replicas N`) poll the shared store for a new model version this often."""
    decision_flush_ms: float = Field(default=20.0, ge=0.0)
    """Decisions are written behind the response, in batches, within this many ms (0: in
    the request). Feedback writes its decision first, so acknowledged feedback stays durable."""
    max_body_bytes: int = Field(default=256 * 1024, ge=1)
    """Largest accepted request body; larger bodies get 413."""
    queue_size: int = Field(default=1024, ge=1)
    """Capacity of the online-learner queue; a full queue answers 503 with Retry-After."""
    retry_after_s: int = Field(default=1, ge=1)
    """Seconds advertised in `Retry-After` when the learner queue is full."""
    checkpoint_every: int = Field(default=100, ge=1)
    """Checkpoint the core (and mark feedback applied) after this many learner updates."""
    checkpoint_dir: Path | None = None
    """Where the core writes checkpoints; None puts them beside the database."""
    model_uri: str | None = CHAMPION_URI
    """MLflow registry URI of the model to serve. The default serves what `memento train`
    registered when the registry has it (else a local snapshot, else a fresh model over
    `items_path`); set explicitly, a missing model fails the start; `none` disables it."""
    scorer: Literal["blend", "items"] = "blend"
    """What a FRESH (untrained) model's policy decides: cases for the blend, or the items
    themselves (`recsys.config.RecommendConfig.scorer`). A trained bundle brings its own."""
    mode: Literal["soft-q", "non-parametric", "tabular"] = "soft-q"
    """Learner of a FRESH model: soft-Q over the candidates, similarity only (non-parametric),
    or a tabular value per candidate (MemRL-style). A trained bundle brings its own."""
    memory: bool = True
    """Write a case per feedback into the bank (False: the no-memory ablation; the policy still
    learns, but retrieval never proposes what other users acted on)."""
    gamma: float = Field(default=0.9, ge=0.0, lt=1.0)
    """Discount of a FRESH model's soft TD target (online, what is shown changes s')."""
    alpha: float = Field(default=0.1, gt=0.0)
    """Soft-Q temperature of a FRESH model: the policy samples from softmax(Q / alpha)."""
    dwell_weight: float = Field(default=0.0, ge=0.0)
    """Reward per capped dwell minute of a FRESH model (0: dwell ignored)."""
    explore_items: int = Field(default=0, ge=0, le=1000)
    """Random unseen catalogue items added to a FRESH items-scorer model's pool per request
    (exploration in candidate generation; 0 = off)."""
    popularity_half_life_hours: float = Field(default=0.0, ge=0.0)
    """Half-life of a FRESH model's popularity counts (0: plain counts of every event)."""
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
    blas_threads: int = Field(default=1, ge=0)
    """BLAS threads per process (1: request-level concurrency, no oversubscription; 0: leave)."""
    text_encoder: Literal["use", "hashing"] = "use"
    """Item-title encoder of a fresh model: multilingual USE (512-d) or fast feature hashing."""
    text_dim: int = Field(default=64, ge=8, le=4096)
    """Dimension of the hashing encoder (USE is always 512)."""
    items_path: Path | None = None
    """Canonical `items.parquet` (item_id, title); None: the model's own, else ids as titles."""
    index: Literal["flat", "hnsw"] = "hnsw"
    """faiss index of a fresh case bank: HNSW (meets the latency target at 100k cases) or
    exact flat; a loaded bank keeps its own."""
    top_k: int = Field(default=32, ge=1, le=1024)
    """Cases retrieved from the bank per request (the policy's candidate set)."""
    num_chosen: int = Field(default=4, ge=1, le=64)
    """Cases the soft-Q policy samples per request (m)."""
    neighbours: int = Field(default=20, ge=0, le=1000)
    """Catalog nearest neighbours of the state added to the chosen cases' items."""
    llm: Literal["none", "smollm2-135m", "qwen2.5-0.5b"] = "none"
    """Frozen LLM that re-ranks the candidate items (none: policy-weighted scores)."""
    llm_candidates: int = Field(default=20, ge=1, le=200)
    """Most candidate items scored by the LLM per request."""
    updates_per_feedback: int = Field(default=2, ge=0, le=64)
    """Gradient steps of the online learner per applied feedback."""
    online_batch_size: int = Field(default=32, ge=1)
    """Replay batch of an online update."""
    online_min_replay: int = Field(default=1, ge=1)
    """Online updates start once the replay buffer holds this many transitions."""
    online_replay_capacity: int = Field(default=512, ge=1)
    """Cap: the online learner replays the latest this many transitions (a recency window;
    each holds two candidate snapshots, ~29 KB with the trained items scorer, so ~15 MB in all:
    serving/README.md, memory budget). A loaded learner's offline capacity is not used online."""
    learner_lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate of a fresh learner (a loaded learner keeps its own)."""
    snapshot_every_cases: int = Field(default=10_000, ge=1)
    """Write a case-bank snapshot at a checkpoint once this many cases changed since the last."""
    seed: int = 0
    """Seed of a fresh learner and of action sampling."""
    demo_apply_delay_s: float = Field(default=0.0, ge=0.0)
    """Test knob: the core sleeps this long in each feedback update (simulates a slow core)."""

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
