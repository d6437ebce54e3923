"""`memento bench online`: every method on the same simulator seeds, side by side.

Methods: `soft-q`, `non-parametric`, `tabular`, `no-memory` run in the real service
(`bench.online.service_policy`): by default its `RecommendService` built in this process, the
learner applying the outcomes before the next decision (`bench.online.inprocess`); with
`transport="http"` a uvicorn process spoken to over HTTP, with its learner thread. `vw` (Vowpal
Wabbit `--cb_explore_adf`), `random` and `oracle` run in process (`bench.online.adapters`).
Each (method, seed) run is cached as an .npz under the work folder as soon as it ends, so an
interrupted benchmark resumes where it stopped. The soft-q runs double as the logging policy
of the off-policy check (`bench.online.ope`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UnknownSimulatorError
from bench.online.loop import OpeTrace, Trace, run_policy
from bench.online.summary import curve, seed_figures, t_interval
from bench.sim.registry import SIMULATORS, make_simulator

log = logging.getLogger(__name__)

SERVICE = ("soft-q", "non-parametric", "tabular", "no-memory")
"""Methods served by the service."""
TRANSPORTS = ("in-process", "http")
"""How the served methods are reached (`OnlineConfig.transport`)."""
IN_PROCESS = ("vw", "random", "oracle")
"""Methods run in process."""
METHODS = (*SERVICE, *IN_PROCESS)
"""Every method, in report order."""
REPO_ROOT = Path(__file__).resolve().parents[2]
OPE_MODELS = ("ridge", "gbr")
"""Reward models of the off-policy check (`OnlineConfig.ope_model`)."""


@dataclass(frozen=True)
class OnlineConfig:
    """One online benchmark run."""

    simulator: str = "planted"
    """`planted` or `movielens` (`bench.sim.registry`)."""
    interactions: int = 20_000
    """Decisions per (method, seed)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Simulator (and learner) seeds."""
    methods: tuple[str, ...] = METHODS
    """Methods to run."""
    shift_at: float = 0.5
    """Fraction of the run after which tastes shift (0: never)."""
    recovery_window: int = 500
    """Rolling window (decisions) of the recovery figure."""
    curve_points: int = 40
    """Bins of the curves."""
    updates_per_feedback: int = 2
    """Gradient steps of the service's online learner per feedback."""
    transport: str = "in-process"
    """`in-process`: the service's `RecommendService` in this process, its learner applying
    every outcome before the next decision (lag 0; a run repeats on its seed); `http`: a
    uvicorn process per method, its learner thread keeping up as the machine allows."""
    learn_every: int = 1
    """In process: the learner applies the queued outcomes before every k-th decision (1:
    each decision sees every earlier outcome; k > 1: k decisions' outcomes as one batch, a
    lag of at most k - 1 decisions and a k-th of the gradient steps)."""
    ope: bool = True
    """Run the off-policy check on the soft-q logs."""
    ope_rounds: int = 5_000
    """Last logged decisions of each soft-q run used by the off-policy check."""
    ope_model: str = "ridge"
    """The off-policy check's reward model (DM, and DR's baseline): `ridge` (linear in the
    state and the item vector, no interaction between them) or `gbr` (gradient-boosted trees
    on both, `bench.ope.runner.estimate_policy_values`)."""
    workdir: Path = REPO_ROOT / ".cache" / "memento" / "online"
    """Cache of finished runs and service databases."""
    service_url: str | None = None
    """Drive an already-running service at this URL (one service method, never cached)
    instead of starting a fresh one per method."""
    write_key: str = "memento-dev-key"
    """Write key of the service at `service_url`."""
    read_key: str = "memento-dev-read-key"
    """Read key of the service at `service_url`."""

    def validate(self) -> None:
        """Raise a clear error for settings no run can honour."""
        if self.simulator not in SIMULATORS:
            raise UnknownSimulatorError(
                f"unknown simulator {self.simulator!r}; choose one of {', '.join(SIMULATORS)}"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UnknownSimulatorError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
        if self.interactions <= 0:
            raise ValueError(f"--interactions must be > 0, got {self.interactions}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"--transport must be one of {', '.join(TRANSPORTS)}")
        if self.learn_every < 1:
            raise ValueError(f"--learn-every must be >= 1, got {self.learn_every}")
        if self.ope_model not in OPE_MODELS:
            raise ValueError(
                f"--ope-model must be one of {', '.join(OPE_MODELS)}, got {self.ope_model!r}"
            )
        if self.service_url is not None and (
            len(self.methods) != 1 or self.methods[0] not in SERVICE
        ):
            raise ValueError(f"--url drives one service method: pass --methods one of {SERVICE}")

    def key(self, method: str, seed: int) -> str:
        """Cache key of one run (everything that changes its result, the served model's
        `MEMENTO_FRESH__*` / `MEMENTO_PRESET` overrides of this process included)."""
        parts = {
            "sim": self.simulator,
            "n": self.interactions,
            "shift": self.shift_at,
            "upf": self.updates_per_feedback,
            "method": method,
            "seed": seed,
            "transport": self.transport,
            "learn_every": self.learn_every if self.transport == "in-process" else None,
            # the simulation and its traces (4: common random numbers, `bench.sim.base`); the
            # OPE trace's format is read by `_load`
            "v": 4,
        }
        if over := _model_overrides():  # absent when none: earlier cache entries stay valid
            parts["overrides"] = over
        digest = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.simulator}-{method}-s{seed}-n{self.interactions}-{digest}"


def _model_overrides() -> dict[str, str]:
    """The environment's overrides of the served model (`serving.settings`), which change a
    service method's result without changing the command line."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith("MEMENTO_FRESH__") or k == "MEMENTO_PRESET"
    }


@dataclass
class Run:
    """One finished (method, seed) run."""

    trace: Trace
    ope: OpeTrace | None = None
    db: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _save(path: Path, run: Run) -> None:
    arrays: dict[str, Any] = {
        "reward": run.trace.reward,
        "expected": run.trace.expected,
        "oracle": run.trace.oracle,
        "meta": json.dumps(
            {
                "shift_step": run.trace.shift_step,
                "missing": run.trace.missing_pscores,
                "db": str(run.db) if run.db else None,
                "info": run.info,
            }
        ),
    }
    if run.ope is not None:
        arrays["ope_ids"] = np.array(run.ope.decision_ids)
        arrays["ope_allowed"] = np.array(run.ope.allowed)
        arrays["ope_values"] = np.array(run.ope.values, np.float32)
        arrays["ope_counts"] = np.array(run.ope.counts, np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path) -> Run:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    trace = Trace(z["reward"], z["expected"], z["oracle"], meta["shift_step"], meta["missing"])
    ope = None
    if "ope_values" in z:  # an entry written before the per-item values has no OPE trace
        ope = OpeTrace(
            [str(s) for s in z["ope_ids"]],
            allowed=list(z["ope_allowed"]),
            values=list(z["ope_values"]),
            counts=list(z["ope_counts"]),
        )
    return Run(trace, ope, Path(meta["db"]) if meta["db"] else None, meta.get("info", {}))


def run_one(
    cfg: OnlineConfig, method: str, seed: int, progress: Callable[[int], None] | None = None
) -> Run:
    """One (method, seed) run, from the cache when it is there."""
    cache = cfg.workdir / "runs" / f"{cfg.key(method, seed)}.npz"
    if cfg.service_url is not None:  # a live service: its state is not ours to cache
        return _run_service(cfg, method, seed, make_simulator(cfg.simulator, seed), progress)
    if cache.exists():
        return _load(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    sim = make_simulator(cfg.simulator, seed)
    if method in SERVICE:
        run = _run_service(cfg, method, seed, sim, progress)
    else:
        run = Run(run_policy(sim, _peer(method, sim, seed), cfg.interactions,
                             shift_at=cfg.shift_at, progress=progress))  # fmt: skip
    _save(cache, run)
    return run


def _peer(method: str, sim: Any, seed: int) -> Any:
    from bench.online.adapters import PeerAdapter
    from bench.online.peers import OraclePolicy, RandomPolicy

    ids, _ = sim.catalogue()
    if method == "random":
        return PeerAdapter(RandomPolicy(ids, seed=seed))
    if method == "oracle":
        return PeerAdapter(OraclePolicy(sim))
    from bench.online.vw_policy import VWConfig, VWPolicy

    return PeerAdapter(VWPolicy(ids, sim.item_features(), VWConfig(seed=seed)))


def _run_service(
    cfg: OnlineConfig, method: str, seed: int, sim: Any, progress: Callable[[int], None] | None
) -> Run:
    import shutil

    from bench.online.service_policy import (
        HttpTransport,
        ServicePolicy,
        SimClock,
        Transport,
        check_service,
        service_env,
        start_service,
    )

    if cfg.service_url is not None:
        check_service(cfg.service_url)
        policy = ServicePolicy(
            method,
            transport=HttpTransport(method, cfg.service_url),
            clock=SimClock.start(),
            write_key=cfg.write_key,
            read_key=cfg.read_key,
        )
        try:
            trace = run_policy(sim, policy, cfg.interactions, shift_at=cfg.shift_at,
                               progress=progress)  # fmt: skip
        finally:
            policy.close()
        return Run(trace, info={"url": cfg.service_url, "retries_503": policy.retries})
    work = cfg.workdir / "services" / cfg.key(method, seed)
    shutil.rmtree(work, ignore_errors=True)
    env = service_env(
        method,
        sim.catalogue(),
        work,
        seed=seed,
        features=sim.item_features(),
        extra_env={"MEMENTO_UPDATES_PER_FEEDBACK": str(cfg.updates_per_feedback)},
    )
    from bench.online.inprocess import InProcessService

    proc = None
    transport: Transport
    if cfg.transport == "http":
        proc = start_service(method, env, work)
        transport = HttpTransport(method, proc.url)
    else:
        transport = InProcessService(method, env, learn_every=cfg.learn_every)
    policy = ServicePolicy(method, transport=transport, clock=SimClock.start())
    ope = OpeTrace() if method == "soft-q" else None  # always: the cache key ignores --ope
    try:
        trace = run_policy(
            sim,
            policy,
            cfg.interactions,
            shift_at=cfg.shift_at,
            ope=ope,
            decision_id=policy.last_decision,
            progress=progress,
        )
    finally:
        policy.close()
        if proc is not None:
            proc.stop()
    from bench.online.memory_use import case_support

    db = work / "memento.sqlite3"
    info: dict[str, Any] = {"retries_503": policy.retries, "case_support": case_support(db)}
    if isinstance(transport, InProcessService):  # where a decision's CPU went
        info["cpu_ms_per_decision"] = transport.cpu_ms_per_decision()
    return Run(trace, ope, db, info)


def summarise(cfg: OnlineConfig, runs: dict[str, dict[int, Run]]) -> dict[str, Any]:
    """The JSON payload: per method figures (seed mean and t CI), curves, paired differences."""
    results: dict[str, Any] = {}
    figs = {
        m: {s: seed_figures(r.trace, cfg.recovery_window) for s, r in by_seed.items()}
        for m, by_seed in runs.items()
    }
    for m, by_seed in runs.items():
        f = figs[m]
        row: dict[str, Any] = {}
        for name in ("reward_last_20pct", "expected_last_20pct", "cumulative_regret"):
            mean, lo, hi = t_interval([getattr(x, name) for x in f.values()])
            key = "reward_per_decision_last_20pct" if name == "reward_last_20pct" else name
            row[key], row[f"{key}_ci"] = mean, [lo, hi]
        oracle = float(np.mean([x.oracle_last_20pct for x in f.values()]))
        row["oracle_expected_last_20pct"] = oracle
        row["ratio_to_oracle"] = row["expected_last_20pct"] / oracle if oracle else None
        rec = [x.recovery for x in f.values()]
        row["recovery_after_shift"] = rec
        pre = [x.before_shift_ratio for x in f.values()]
        row["before_shift_ratio_to_oracle"] = (
            None if any(v is None for v in pre) else float(np.mean(pre))  # type: ignore[arg-type]
        )
        row["seeds"] = {str(s): {k: v for k, v in asdict(x).items()} for s, x in f.items()}
        row["curve"] = curve([r.trace for r in by_seed.values()], cfg.curve_points)
        support = [r.info["case_support"] for r in by_seed.values() if "case_support" in r.info]
        if support:  # a served run: the share of pool / shown items some case proposed
            row["case_support"] = {
                k: None
                if any(x[k] is None for x in support)
                else float(np.mean([x[k] for x in support]))
                for k in support[0]
            }
        results[m] = row
    paired: dict[str, Any] = {}
    if "soft-q" in runs:
        for m in runs:
            if m == "soft-q":
                continue
            common = sorted(set(runs[m]) & set(runs["soft-q"]))
            d = [
                figs["soft-q"][s].expected_last_20pct - figs[m][s].expected_last_20pct
                for s in common
            ]
            if d:
                mean, lo, hi = t_interval(d)
                paired[m] = {"soft-q_minus_method": mean, "ci": [lo, hi], "seeds": common}
    return {
        "simulator": cfg.simulator,
        "interactions": cfg.interactions,
        "seeds": list(cfg.seeds),
        "shift_at_decision": int(cfg.interactions * cfg.shift_at) if cfg.shift_at else None,
        "results": results,
        "paired_expected_last_20pct": paired,
    }


__all__ = [
    "IN_PROCESS",
    "METHODS",
    "OPE_MODELS",
    "SERVICE",
    "TRANSPORTS",
    "OnlineConfig",
    "Run",
    "run_one",
    "summarise",
]
