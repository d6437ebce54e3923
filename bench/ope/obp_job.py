"""Standalone OBP job, executed INSIDE the pinned OBP venv (not the project's .venv).

Usage: ``python obp_job.py SPEC.json OUT.json``. The spec (written by
``bench/ope/runner.py``) names:

- ``feedback``: an ``.npz`` in Open Bandit Pipeline's ``bandit_feedback`` layout, already cut to
  the evaluated records: ``action``, ``position``, ``reward``, ``pscore`` (n_rounds,),
  ``context`` (n_rounds, d), ``action_context`` (n_actions, d_a), ``n_actions``, ``len_list``;
- ``policies``: ``{name: path of an .npy action_dist (n_rounds, n_actions, len_list)}``;
- ``n_folds`` (cross-fitting folds of the reward model), ``base_model`` (``ridge`` |
  ``gbr``), ``n_bootstrap``, ``alpha`` (CI level 1 - alpha), ``seed``.

For every policy it runs ``obp.ope.OffPolicyEvaluation`` with IPW, SNIPW, DM and DR: the
point estimates (``estimate_policy_values``) and bootstrap intervals (``estimate_intervals``),
DM / DR with ``estimated_rewards_by_reg_model`` from ``obp.ope.RegressionModel.fit_predict``
(cross-fitted on the logged records, one sklearn regressor per position; rewards are
continuous). Writes ``{"n_rounds", "n_actions", "len_list", "mean_reward", "reward_model":
{"base_model", "mse", "mse_of_mean"}, "policies": {name: {estimator: {"value", "lo", "hi"}}}}``
to OUT.json: ``mse`` is the reward model's cross-fitted squared error on the logged records (each
predicted by a model that did not see it), ``mse_of_mean`` that of predicting the mean reward,
so a reward model can be chosen by its fit, never by the estimates it leads to. Only stdlib +
OBP (and its numpy, sklearn) imports here: this file must not import the project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ESTIMATORS = ("ipw", "snipw", "dm", "dr")
"""OBP estimator names, in the output's order."""


def _base_model(kind: str, seed: int) -> Any:
    """The sklearn regressor of the reward model q(x, a) (features: context + item vector)."""
    if kind == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if kind == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=seed)
    raise ValueError(f"unknown base_model {kind!r} (ridge | gbr)")


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The estimates of every policy of the spec (module docstring)."""
    import numpy as np
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        OffPolicyEvaluation,
        RegressionModel,
        SelfNormalizedInverseProbabilityWeighting,
    )

    with np.load(spec["feedback"]) as z:
        fb = {k: z[k] for k in z.files}
    n_actions, len_list = int(fb["n_actions"]), int(fb["len_list"])
    bandit_feedback = {
        "n_rounds": int(fb["action"].shape[0]),
        "n_actions": n_actions,
        "action": fb["action"].astype(int),
        "position": fb["position"].astype(int),
        "reward": fb["reward"].astype(float),
        "pscore": fb["pscore"].astype(float),
        "context": fb["context"].astype(float),
        "action_context": fb["action_context"].astype(float),
    }
    seed = int(spec["seed"])
    reg = RegressionModel(
        base_model=_base_model(str(spec["base_model"]), seed),
        n_actions=n_actions,
        len_list=len_list,
        action_context=bandit_feedback["action_context"],
    )
    q_hat = reg.fit_predict(
        context=bandit_feedback["context"],
        action=bandit_feedback["action"],
        reward=bandit_feedback["reward"],
        pscore=bandit_feedback["pscore"],
        position=bandit_feedback["position"],
        n_folds=int(spec["n_folds"]),
        random_state=seed,
    )
    rounds = np.arange(bandit_feedback["n_rounds"])
    fitted = q_hat[rounds, bandit_feedback["action"], bandit_feedback["position"]]
    reward = bandit_feedback["reward"]
    fit = {
        "base_model": str(spec["base_model"]),
        "mse": float(np.mean((reward - fitted) ** 2)),
        "mse_of_mean": float(np.var(reward)),
    }
    ope = OffPolicyEvaluation(
        bandit_feedback=bandit_feedback,
        ope_estimators=[
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DirectMethod(),
            DoublyRobust(),
        ],
    )
    alpha = float(spec["alpha"])
    level = f"{100 * (1.0 - alpha)}% CI"
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in spec["policies"].items():
        action_dist = np.load(path).astype(float)
        points = ope.estimate_policy_values(
            action_dist=action_dist, estimated_rewards_by_reg_model=q_hat
        )
        intervals = ope.estimate_intervals(
            action_dist=action_dist,
            estimated_rewards_by_reg_model=q_hat,
            alpha=alpha,
            n_bootstrap_samples=int(spec["n_bootstrap"]),
            random_state=seed,
        )
        out[name] = {
            est: {
                "value": float(points[est]),
                "lo": float(intervals[est][f"{level} (lower)"]),
                "hi": float(intervals[est][f"{level} (upper)"]),
            }
            for est in ESTIMATORS
        }
    return {
        "n_rounds": bandit_feedback["n_rounds"],
        "n_actions": n_actions,
        "len_list": len_list,
        "mean_reward": float(bandit_feedback["reward"].mean()),
        "reward_model": fit,
        "policies": out,
    }


def main(argv: list[str]) -> int:
    """``obp_job.py SPEC.json OUT.json``."""
    if len(argv) != 3:
        sys.stderr.write("usage: obp_job.py SPEC.json OUT.json\n")
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    result = run(spec)
    Path(argv[2]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
