"""Off-policy estimates of evaluation policies on the service's logged lists, with OBP.

Input: the ``.npz`` that ``memento logs export --format obp`` writes
(``serving.logs_export``): one record per (decision, shown position) with a logged propensity,
in decision time order, positions ascending::

    action (R,) int        catalogue row of the shown item      position (R,) int, 0-based
    reward (R,) float      reward of the feedback on that item  pscore (R,) float in (0, 1]
    context (R, d) float   the decision's state vector          decision_index (R,) int
    action_context (A, d_a) item vectors                        decisions (D,) decision ids
    n_actions, len_list    scalars                              item_ids (A,) catalogue ids

and one ``action_dist`` per evaluation policy: (D, A, >= positions) with
``action_dist[i, a, k] = pi_e(item a at position k | decision i's state)`` for the D exported
decisions in ``decisions`` order (each [i, :, k] sums to 1).

Only positions ``< positions`` are evaluated (OBP holds (records, A, positions) arrays per
policy). The job (``obp_job.py``) runs in the pinned OBP venv (``env.ensure_obp_env``) as a
subprocess; failures raise ``bench.errors.OpeRunError`` with the tail of its log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from bench.errors import OpeRunError
from bench.ope.env import ObpEnvConfig, ensure_obp_env
from bench.side_venv import run_job

__all__ = [
    "ESTIMATORS",
    "JOB_SCRIPT",
    "Estimate",
    "estimate_policy_values",
    "load_feedback",
    "reward_model_fit",
]

log = logging.getLogger(__name__)

JOB_SCRIPT = Path(__file__).with_name("obp_job.py")
ESTIMATORS = ("ipw", "snipw", "dm", "dr")
"""OBP estimators run on every policy: inverse probability weighting, its self-normalised
form, the direct method and doubly robust (DM / DR use a cross-fitted reward model)."""
_KEYS: tuple[str, ...] = (
    "action",
    "position",
    "reward",
    "pscore",
    "context",
    "action_context",
    "n_actions",
    "decision_index",
    "decisions",
)
"""Export arrays the runner reads (`serving.logs_export` writes them and more)."""


class Estimate(NamedTuple):
    """One estimator's estimate of one policy's value."""

    value: float
    """Point estimate: expected reward per evaluated (decision, position) record."""
    lo: float
    """Lower end of the bootstrap confidence interval (level 1 - alpha)."""
    hi: float
    """Upper end of the bootstrap confidence interval."""


def load_feedback(feedback_npz: Path) -> dict[str, np.ndarray]:
    """The export's arrays (module docstring); `ValueError` when a key is missing."""
    path = Path(feedback_npz)
    if not path.is_file():
        raise FileNotFoundError(f"no bandit feedback file at {path}")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ValueError(f"{path} is not an OBP export: missing {', '.join(missing)}")
    return data


def _check_dist(name: str, dist: np.ndarray, n_dec: int, n_actions: int, positions: int) -> None:
    want = f"({n_dec}, {n_actions}, >={positions})"
    if dist.ndim != 3 or dist.shape[:2] != (n_dec, n_actions) or dist.shape[2] < positions:
        raise ValueError(f"action_dist {name!r} has shape {dist.shape}, expected {want}")
    head = dist[:, :, :positions]
    if (head < 0).any() or not np.allclose(head.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"action_dist {name!r}: each [decision, :, position] must sum to 1")


def estimate_policy_values(
    feedback_npz: Path,
    action_dists: Mapping[str, np.ndarray],
    *,
    positions: int = 1,
    max_rounds: int | None = None,
    seed: int = 0,
    n_bootstrap: int = 200,
    workdir: Path,
    n_folds: int = 3,
    base_model: Literal["ridge", "gbr"] = "ridge",
    alpha: float = 0.05,
    env: ObpEnvConfig | None = None,
    timeout_s: float | None = None,
) -> dict[str, dict[str, Estimate]]:
    """OBP's IPW, SNIPW, DM and DR estimates (+ bootstrap CIs) of each evaluation policy.

    Returns ``{policy: {"ipw" | "snipw" | "dm" | "dr": Estimate(value, lo, hi)}}``. A value is
    the policy's expected reward PER EVALUATED POSITION RECORD: the mean over the logged
    (decision, position < ``positions``) records of the reward it would get there; times
    ``positions`` it is the expected list value over those positions (when every decision
    has a record at each of them: rounds left out at export time make the mix uneven).

    feedback_npz: the export (module docstring). action_dists: {policy: (D, A, >= positions)}
    for the export's D decisions in ``decisions`` order. max_rounds: evaluate a random subset
    of that many records (seeded, kept in order); None: all. n_folds: cross-fitting folds of
    the reward model (``base_model``: sklearn Ridge or GradientBoostingRegressor on [state,
    item vector]). n_bootstrap / alpha: bootstrap resamples and 1 - CI level. The OBP venv is
    built on first use (minutes); raises ``OpeRunError`` when it or the job fails,
    ``ValueError`` on inconsistent inputs.
    """
    if positions < 1:
        raise ValueError(f"positions must be >= 1, got {positions}")
    if not action_dists:
        raise ValueError("no evaluation policy given")
    fb = load_feedback(feedback_npz)
    n_actions, n_dec = int(fb["n_actions"]), int(fb["decisions"].shape[0])
    for name, dist in action_dists.items():
        _check_dist(name, np.asarray(dist), n_dec, n_actions, positions)
    keep = np.flatnonzero(fb["position"] < positions)
    if max_rounds is not None and len(keep) > max_rounds:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(keep, size=max_rounds, replace=False))
    if len(keep) < max(2, n_folds):
        raise ValueError(f"only {len(keep)} records at positions < {positions}: too few")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = fb["decision_index"][keep]
    np.savez(
        workdir / "feedback.npz",
        action=fb["action"][keep],
        position=fb["position"][keep],
        reward=fb["reward"][keep],
        pscore=fb["pscore"][keep],
        context=fb["context"][keep],
        action_context=fb["action_context"],
        n_actions=np.int64(n_actions),
        len_list=np.int64(positions),
    )
    policies: dict[str, str] = {}
    for k, (name, dist) in enumerate(action_dists.items()):
        path = workdir / f"action_dist_{k}.npy"
        np.save(path, np.asarray(dist, np.float64)[rows, :, :positions])
        policies[name] = str(path)
    spec = {
        "feedback": str(workdir / "feedback.npz"),
        "policies": policies,
        "n_folds": int(n_folds),
        "base_model": base_model,
        "n_bootstrap": int(n_bootstrap),
        "alpha": float(alpha),
        "seed": int(seed),
    }
    raw = _run_job(workdir, spec, env, timeout_s)
    return {
        name: {e: Estimate(*(float(est[e][f]) for f in ("value", "lo", "hi"))) for e in ESTIMATORS}
        for name, est in raw["policies"].items()
    }


def reward_model_fit(workdir: Path) -> dict[str, float | str]:
    """The reward model's fit in the last `estimate_policy_values` run in `workdir`:
    {"base_model", "mse" (cross-fitted squared error on the logged records), "mse_of_mean"
    (that of the mean reward)}; {} when that run's output has none."""
    out = Path(workdir) / "out.json"
    if not out.is_file():
        return {}
    got: dict[str, float | str] = json.loads(out.read_text()).get("reward_model", {})
    return got


def _run_job(
    workdir: Path, spec: dict[str, object], env: ObpEnvConfig | None, timeout_s: float | None
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Run ``obp_job.py`` in the OBP venv on ``spec``; its parsed output."""
    py = ensure_obp_env(env)
    result: dict[str, dict[str, dict[str, dict[str, float]]]] = run_job(
        py, JOB_SCRIPT, spec, workdir, OpeRunError, what="OBP job", timeout_s=timeout_s
    )
    return result
