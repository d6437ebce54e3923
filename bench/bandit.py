"""Contextual bandit with planted optimal cases: does learning *which case to retrieve* pay?

World (per seed): C state clusters with unit centres in R^d; each cluster owns `cases_per_cluster`
cases whose keys scatter around its centre; every case carries a recorded outcome (feature
"reward") drawn from U(0, 0.7). In each cluster one case is planted as the optimum: it is the
case ranked `opt_rank_lo..opt_rank_hi` by similarity to the centre (so similarity retrieval puts
it in the Top-K but almost never first) and its recorded outcome is drawn from U(0.8, 1.0).
A state is a noisy point around a cluster centre. Showing case c yields an action with
probability 0.9 for the optimum and 0.5 * recorded_outcome(c) otherwise; the slate reward is 1
if any shown case's item was acted on. Per-case credit follows `recsys.rl.credit`.

Why the modes differ: non-parametric ranks by similarity and so picks a distractor; tabular
(MemRL) must discover each cluster's optimum separately by exploration (Q per case, no
generalisation); soft-Q and parametric-CE learn from all clusters at once that the recorded
outcome feature predicts the reward, and so generalise to clusters they rarely saw.

Metric: `optimal_rate` = fraction of fresh evaluation states whose greedy top-1 choice is the
planted optimum, after `steps` interaction steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

MODES = ("soft-q", "parametric-ce", "non-parametric", "tabular")


@dataclass(frozen=True)
class BanditConfig:
    steps: int = 600
    """Interaction steps per mode (one slate each, one update each)."""
    dim: int = 32
    """Key/state dimension."""
    clusters: int = 40
    """State clusters."""
    cases_per_cluster: int = 100
    """Cases around each cluster centre (total cases = clusters * cases_per_cluster)."""
    state_noise: float = 0.25
    """Norm of the noise added to a cluster centre to make a state."""
    case_spread_lo: float = 0.4
    """Smallest noise norm of a case key around its centre."""
    case_spread_hi: float = 1.2
    """Largest noise norm of a case key around its centre."""
    opt_rank_lo: int = 4
    """The planted optimum is the case ranked in [lo, hi] (1 = nearest) to the centre."""
    opt_rank_hi: int = 10
    """See opt_rank_lo."""
    top_k: int = 32
    """Candidates retrieved per state."""
    num_chosen: int = 4
    """Cases shown per slate."""
    eval_states: int = 500
    """Fresh states for the final greedy evaluation."""
    credit_rule: str = "attributed"
    """Credit rule for per-case rewards: attributed | equal."""


def _unit(x: Any) -> Any:
    import numpy as np

    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class BanditWorld:
    """The planted world of one seed (see the module docstring)."""

    def __init__(self, cfg: BanditConfig, seed: int) -> None:
        import numpy as np

        from recsys.config import CaseBankConfig
        from recsys.memory.case_bank import CaseBank
        from recsys.records import Case

        self.cfg = cfg
        rng = np.random.default_rng(seed)
        self.rng = rng
        d, c, n = cfg.dim, cfg.clusters, cfg.cases_per_cluster
        self.centres = _unit(rng.normal(size=(c, d)))
        noise = _unit(rng.normal(size=(c, n, d)))
        spread = rng.uniform(cfg.case_spread_lo, cfg.case_spread_hi, size=(c, n, 1))
        keys = _unit(self.centres[:, None, :] + spread * noise)
        outcome = rng.uniform(0.0, 0.7, size=(c, n))
        self.optimum = np.zeros(c, np.int64)
        sims = np.einsum("cnd,cd->cn", keys, self.centres)
        for j in range(c):
            rank = int(rng.integers(cfg.opt_rank_lo, cfg.opt_rank_hi + 1))
            local = int(np.argsort(-sims[j])[rank - 1])
            outcome[j, local] = rng.uniform(0.8, 1.0)
            self.optimum[j] = j * n + local
        self.outcome = outcome.reshape(-1)
        self.is_opt = np.zeros(c * n, bool)
        self.is_opt[self.optimum] = True
        self.now = 30 * 86400.0
        bank_cfg = CaseBankConfig(index="flat")
        self.bank = CaseBank(bank_cfg, d)
        ts = rng.uniform(0, self.now, size=c * n)
        cases = [
            Case(key=k, payload={"cluster": i // n}, reward=float(o), ts=float(t))
            for i, (k, o, t) in enumerate(zip(keys.reshape(-1, d), self.outcome, ts, strict=True))
        ]
        ids = self.bank.write_batch(cases)
        assert ids == list(range(c * n)), "bank ids must equal world indices"

    def sample_state(self) -> tuple[Any, int]:
        """(d,) state vector and its cluster."""
        j = int(self.rng.integers(self.cfg.clusters))
        g = _unit(self.rng.normal(size=self.cfg.dim))
        return _unit(self.centres[j] + self.cfg.state_noise * g).astype("float32"), j

    def act_prob(self, case_ids: Any) -> Any:
        """Probability that the user acts on each shown case's item."""
        import numpy as np

        return np.where(self.is_opt[case_ids], 0.9, 0.5 * self.outcome[case_ids])


def run_mode(
    world: BanditWorld, mode: str, seed: int, cfg: BanditConfig, eval_set: list[Any]
) -> float:
    """Train one learner in `world` for cfg.steps and return its greedy optimal rate."""
    import numpy as np

    from recsys.config import CreditConfig, LearnerConfig, QNetworkConfig
    from recsys.loop import Decided, MemoryLoop
    from recsys.rl.credit import assign_credit
    from recsys.rl.learner import Learner

    lcfg = LearnerConfig(
        mode=mode,  # type: ignore[arg-type]
        gamma=0.0,
        lr=1e-3,
        batch_size=32,
        min_replay=32,
        ce_threshold=0.5,
        seed=seed,
        q=QNetworkConfig(proj_dim=32, hidden=64),
    )
    learner = Learner(lcfg, cfg.dim, cfg.dim)
    loop = MemoryLoop(learner, updates_per_learn=1.0)
    credit = CreditConfig(rule=cfg.credit_rule)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed + 1000)
    for _ in range(cfg.steps):
        s, _j = world.sample_state()
        cands = world.bank.search(s, cfg.top_k, now=world.now)
        choice = loop.decide(s, cands, cfg.num_chosen)
        acted = rng.random(len(choice.case_ids)) < world.act_prob(choice.case_ids)
        reward = float(acted.any())
        items = [{str(c)} for c in choice.case_ids]
        acted_items = {str(c) for c, a in zip(choice.case_ids, acted, strict=True) if a}
        rewards = assign_credit(reward, items, acted_items, credit)
        loop.learn(Decided(s, cands, choice.indices, choice.logp), rewards, None, None)
    hits = 0
    for s, j in eval_set:
        cands = world.bank.search(s, cfg.top_k, now=world.now)
        choice = loop.decide(s, cands, 1, greedy=True)
        hits += int(choice.case_ids[0] == world.optimum[j])
    return hits / len(eval_set)


def run_bandit(
    cfg: BanditConfig, seeds: list[int], modes: tuple[str, ...] = MODES
) -> dict[str, Any]:
    """All modes over all seeds, plus the soft-Q credit ablation; one JSON-able dict."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    per_seed: dict[str, list[float]] = {m: [] for m in modes}
    ablation: dict[str, list[float]] = {"attributed": [], "equal": []}
    in_topk: list[float] = []
    nearest: list[float] = []
    for seed in seeds:
        world = BanditWorld(cfg, seed)
        eval_set = [world.sample_state() for _ in range(cfg.eval_states)]
        tops = [world.bank.search(s, cfg.top_k, now=world.now).case_ids for s, _ in eval_set]
        in_topk.append(
            float(
                np.mean([world.optimum[j] in t for t, (_, j) in zip(tops, eval_set, strict=True)])
            )
        )
        nearest.append(
            float(
                np.mean(
                    [world.optimum[j] == t[0] for t, (_, j) in zip(tops, eval_set, strict=True)]
                )
            )
        )
        for mode in modes:
            rate = run_mode(world, mode, seed, cfg, eval_set)
            per_seed[mode].append(rate)
            log.info("seed %d %s optimal_rate %.3f", seed, mode, rate)
            if mode == "soft-q":
                ablation[cfg.credit_rule].append(rate)
        other = "equal" if cfg.credit_rule == "attributed" else "attributed"
        if "soft-q" in modes:
            ablation[other].append(
                run_mode(world, "soft-q", seed, replace(cfg, credit_rule=other), eval_set)
            )
    return {
        "steps": cfg.steps,
        "seeds": seeds,
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "optimal_rate": {m: float(np.mean(v)) for m, v in per_seed.items()},
        "optimal_rate_per_seed": per_seed,
        "optimal_rate_min_over_seeds": {m: float(np.min(v)) for m, v in per_seed.items()},
        "soft_q_credit_ablation": {k: float(np.mean(v)) for k, v in ablation.items() if v},
        "optimum_in_topk_rate": float(np.mean(in_topk)),
        "optimum_is_nearest_rate": float(np.mean(nearest)),
        "num_cases": cfg.clusters * cfg.cases_per_cluster,
        "config": asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 2),
    }
