"""The sequence policy as soft-q in a replay comparison (`CompareConfig.policy == "seq"`).

Per seed, each step cached under `SeqMethodConfig.work` (a restart resumes; a changed split or
setting gets another file, keyed by the split's hash and the setting):
1. selection fit: the setting (`SeqMethodConfig`, chosen on validation by
   `bench.replay.seq_eval`'s grid) trained on the fit rows for `epochs` epochs; after every
   epoch the validation NDCG@10 of the greedy policy (with its bootstrap CI), shown whole: the
   validation curve (no early stop);
2. case memory chosen on validation: K and the vote weight w of soft-q, K of the vote alone;
3. refit: the same setting on the refit rows (train + valid under leave-last-out; skipped with
   `SeqMethodConfig.refit` False: the selection fit is tested);
4. test: the refit model with a case memory of the refit rows, shipped as a `ModelBundle` with
   the `seq` scorer, ranks every test row through the `Recommender` (`run_pass`: the same rows,
   history rule, seen mask and cold-user list as every method).

Step 2 also chooses the item prior (`bench.replay.seq_prior`: a tuned peer's item x item matrix
and its weight v, after K and w). The selection fit and the refit are cached; the choices of
step 2 are recomputed from them on every run (seconds).

Results: `soft-q` (state + Q + cases + item prior) and its ablations on the same model:
`no-prior` (v = 0), `q-only` (w = 0, the prior kept), `ce-head` (the supervised head alone),
`cases-only` (the vote alone).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.replay.config import SEQ_ABLATIONS, SeqMethodConfig
from bench.replay.seq_prior import PriorCandidates, choose_prior, tuned_prior_settings
from bench.replay.seq_rows import EvalRows, Protocol, protocol_of, row_metrics
from bench.stats import bootstrap_ci
from recsys.bundle import ModelBundle
from recsys.presets import derive
from recsys.rec.seq import SeqModelConfig
from recsys.rec.seq.model import SeqQModel
from recsys.rec.seq.policy import SeqPolicy, SeqPolicyConfig, SeqScores
from recsys.rl.learner import Learner
from recsys.rl.sqn import SQNConfig
from training.config import TrainConfig
from training.evaluate import eval_decisions, list_metrics
from training.modes import MethodResult
from training.replay_env import ReplayParts, run_pass
from training.replay_world import ReplayWorld
from training.seq_fit import SeqFitConfig, fit_seq

__all__ = [
    "GRID",
    "fit_config",
    "fitted_policy",
    "prefit_seeds",
    "prior_candidates",
    "run_seq_policy",
    "seed_stem",
    "seq_bundle",
    "seq_protocol",
    "split_key",
    "validation_evaluator",
]

log = logging.getLogger(__name__)

_STALE_S = 4 * 3600.0
"""A lock file older than this is left by a process that died: fit the seed here."""


GRID: dict[str, dict[str, Any]] = {
    "tf": {},
    "gru": {"encoder": "gru", "layers": 1},
    "tf-ce-only": {"q_weight": 0.0, "cql_weight": 0.0},
    "tf-q0.2": {"q_weight": 0.2},
    "tf-drop0.5": {"dropout": 0.5},
    "tf-gamma0.9": {"gamma": 0.9},
    "tf-alpha0.3": {"alpha": 0.3},
    "gru-prior": {"encoder": "gru", "layers": 1, "prior": True, "cql_weight": 0.0},
    "tf-prior": {"prior": True, "cql_weight": 0.0},
    "gru-prior-drop0.5": {
        "encoder": "gru",
        "layers": 1,
        "prior": True,
        "cql_weight": 0.0,
        "dropout": 0.5,
    },
}
"""Named settings tried on validation: overrides of `SeqModelConfig`, `SQNConfig` (base:
`cql_weight` 1) and `SeqFitConfig` (base: batch 16, lr 2e-3) defaults."""


def fit_config(mc: SeqMethodConfig, n_items: int, seed: int) -> SeqFitConfig:
    """The training run of `mc.setting` (`GRID`) for `mc.epochs` epochs."""
    o = GRID[mc.setting]
    mfields = SeqModelConfig.__dataclass_fields__
    qfields = SQNConfig.__dataclass_fields__
    model = SeqModelConfig(n_items=n_items, **{k: v for k, v in o.items() if k in mfields})
    sqn = replace(SQNConfig(cql_weight=1.0), **{k: v for k, v in o.items() if k in qfields})
    fit = {"batch_size": 16, "lr": 2e-3} | {
        k: v for k, v in o.items() if k not in mfields and k not in qfields
    }
    return SeqFitConfig(model=model, sqn=sqn, epochs=mc.epochs, seed=seed, **fit)


def validation_evaluator(rows: EvalRows, sqn: SQNConfig) -> Callable[[SeqQModel], dict[str, float]]:
    """After each epoch: validation NDCG@10 of the greedy policy (no memory) with its row
    bootstrap CI, and of the supervised head."""

    def evaluate(model: SeqQModel) -> dict[str, float]:
        sc = SeqPolicy(model, None, SeqPolicyConfig(case_weight=0.0, sqn=sqn)).heads(rows.histories)
        nd = row_metrics(sc.policy, rows)[0]
        lo, hi = bootstrap_ci(nd)
        ce = float(row_metrics(sc.ce, rows)[0].mean())
        return {"valid/q": float(nd.mean()), "valid/q_lo": lo, "valid/q_hi": hi, "valid/ce": ce}

    return evaluate


def _choose_memory(
    policy: SeqPolicy, sc: SeqScores, votes: dict[int, np.ndarray], rows: EvalRows,
    mc: SeqMethodConfig,
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:  # fmt: skip
    """(chosen {k, w, k_vote}, soft-q grid, vote-alone grid) on the validation rows."""
    grid = {
        f"k={k},w={w}": float(row_metrics(sc.policy + w * votes[k], rows)[0].mean())
        for k in mc.ks
        for w in mc.weights
    }
    vote = {f"k={k}": float(row_metrics(votes[k], rows)[0].mean()) for k in mc.ks}
    best = max(grid, key=lambda g: (grid[g], -list(grid).index(g)))  # ties: first in grid
    k_vote = max(vote, key=lambda g: (vote[g], -list(vote).index(g)))
    kk, ww = best.split(",")
    chosen = {"k": int(kk[2:]), "w": float(ww[2:]), "k_vote": int(k_vote[2:])}
    return chosen, grid, vote


def _cached(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`make()`, saved at `path` (read back when it is there); a process that finds another
    one making it (`<path>.lock`) waits for its file."""
    lock = path.with_suffix(".lock")
    while not path.is_file() and lock.is_file() and time.time() - lock.stat().st_mtime < _STALE_S:
        time.sleep(30.0)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock.touch()
    try:
        out = make()
        torch.save(out, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return out
    finally:
        lock.unlink(missing_ok=True)


def _fits(proto: Protocol, mc: SeqMethodConfig, seed: int, stem: Path) -> dict[str, Any]:
    """Steps 1 and 3 of one seed (module docstring), each cached: `<stem>-select.pt` (the
    selection fit and its validation curve) and `<stem>-refit.pt` (the refit, when
    `mc.refit`)."""
    cfg = fit_config(mc, len(proto.item_ids), seed)

    def select() -> dict[str, Any]:
        res = fit_seq(cfg, proto.train_seqs, validation_evaluator(proto.valid, cfg.sqn))
        return {"curve": res.curve, "state_dict": res.model.state_dict(),
                "cpu_seconds": res.train_cpu_seconds}  # fmt: skip

    def refit() -> dict[str, Any]:
        res = fit_seq(cfg, proto.trainval_seqs)
        return {"state_dict": res.model.state_dict(), "cpu_seconds": res.train_cpu_seconds}

    sel = _cached(Path(f"{stem}-select.pt"), select)
    ref = _cached(Path(f"{stem}-refit.pt"), refit) if mc.refit else None
    return {"select": sel, "refit": ref}


def prior_candidates(
    mc: SeqMethodConfig,
    cfg: TrainConfig,
    split: Any,
    item_ids: np.ndarray,
    known: dict[str, dict[str, float]] | None = None,
) -> PriorCandidates | None:
    """The item prior's candidates of a split (None when `mc` tries no prior); `known`: the
    settings the comparison's own peer searches chose (the others are searched here)."""
    from bench.replay.methods import training_rows
    from bench.replay.tuning import validation_frames

    if not mc.prior_peers or not any(mc.prior_weights):
        return None
    ex = cfg.core.recommend.exclude_seen
    settings = tuned_prior_settings(split, item_ids, ex, mc.prior_peers, known)
    fit = validation_frames(split)[0]
    return PriorCandidates(settings, fit, training_rows(cfg, split), item_ids)


def _model(state_dict: dict[str, Any], cfg: SeqFitConfig) -> SeqQModel:
    model = SeqQModel(cfg.model)
    model.load_state_dict(state_dict)
    return model


def fitted_policy(
    proto: Protocol,
    mc: SeqMethodConfig,
    seed: int,
    stem: Path,
    priors: PriorCandidates | None,
) -> tuple[SeqPolicy, dict[str, Any]]:
    """The refit model of one seed (fitted, or read from `<stem>-*.pt`) with the case memory
    of the refit rows, the K, w and item prior chosen on validation with the selection fit,
    and the facts of those choices."""
    fits = _fits(proto, mc, seed, stem)
    fcfg = fit_config(mc, len(proto.item_ids), seed)
    sel = SeqPolicy.build(
        _model(fits["select"]["state_dict"], fcfg), proto.train_seqs, SeqPolicyConfig(sqn=fcfg.sqn)
    )
    valid = proto.valid
    sc = sel.heads(valid.histories)
    votes = sel.votes(sc.states, valid.ts, mc.ks)
    ch, grid, vote = _choose_memory(sel, sc, votes, valid, mc)
    pcfg = SeqPolicyConfig(case_k=ch["k"], case_weight=ch["w"], sqn=fcfg.sqn)
    prior_grid: dict[str, float] = {}
    prior = None
    if priors is not None:
        sel_ch = sel.with_config(pcfg)
        pick, prior_grid = choose_prior(sel_ch, sc, votes, valid, priors.valid(), mc.prior_weights)
        ch = {**ch, **pick, "prior_setting": priors.settings.get(pick["prior"] or "", {})}
        if pick["prior"] is not None:
            pcfg = replace(pcfg, prior_weight=pick["v"])
            prior = priors.prior(pick["prior"], "test")
    tested = fits["refit"] or fits["select"]
    policy = SeqPolicy.build(_model(tested["state_dict"], fcfg), proto.trainval_seqs, pcfg)
    facts = {
        "curve": fits["select"]["curve"],
        "chosen_memory": ch,
        "memory_valid": grid,
        "vote_valid": vote,
        "prior_valid": prior_grid,
        "valid_rows": len(valid.users),
        "select_cpu_seconds": fits["select"]["cpu_seconds"],
        "refit_cpu_seconds": fits["refit"]["cpu_seconds"] if fits["refit"] else 0.0,
    }
    return policy.with_prior(prior), facts


def seq_bundle(
    policy: SeqPolicy, parts: ReplayParts, cfg: TrainConfig, meta: dict[str, Any]
) -> ModelBundle:
    """A bundle whose `Recommender` ranks with `policy` (the `seq` scorer) over `parts`."""
    rc = replace(cfg.core.recommend, scorer="seq")
    core = derive(replace(cfg.core, recommend=rc, case_bank=parts.bank.cfg))
    learner = Learner(core.learner, parts.items.dim, parts.items.dim)  # unused by the scorer
    return ModelBundle(
        core,
        learner,
        parts.bank,
        parts.items,
        parts.popularity,
        parts.cooc,
        meta=meta,
        seq=policy,
    )


def seq_protocol(item_ids: np.ndarray, cfg: TrainConfig, split: Any) -> Protocol:
    """The fit, validation and refit rows of a split (`bench.replay.tuning.validation_frames`,
    `bench.replay.methods.training_rows`) over the catalogue `item_ids` (the world's: item i
    = row i - 1)."""
    from bench.replay.methods import training_rows
    from bench.replay.tuning import validation_frames

    fit_rows, valid_rows = validation_frames(split)
    return protocol_of(fit_rows, valid_rows, training_rows(cfg, split), item_ids)


def split_key(name: str, cfg: TrainConfig, split: Any) -> str:
    """The cache key of a dataset's split: its name, protocol and a hash of the split files."""
    from bench.replay.protocol import split_sha256

    raw = "-".join([name, cfg.split, *split_sha256(split).values()])
    return f"{name}-{cfg.split}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


def prefit_seeds(cfg: TrainConfig, seeds: tuple[int, ...], mc: SeqMethodConfig) -> list[Path]:
    """Fit (and cache) the seeds of a comparison without building the replay world (a few
    hundred MB instead of GBs: seeds can be fitted in parallel processes and a
    `memento bench replay` with the same data, split and setting reads them)."""
    from training.prepare import load_data, split_data

    inter, items, name = load_data(cfg)
    split = split_data(cfg, inter)
    ids = [items["item_id"].to_numpy(), inter["item_id"].to_numpy()]
    item_ids = np.unique(np.concatenate(ids).astype(np.int64))  # `build_world`'s catalogue
    proto = seq_protocol(item_ids, cfg, split)
    key = split_key(name, cfg, split)
    stems = [seed_stem(mc, key, seed) for seed in seeds]
    for seed, stem in zip(seeds, stems, strict=True):
        _fits(proto, mc, seed, stem)
    return stems


def seed_stem(mc: SeqMethodConfig, split_key: str, seed: int) -> Path:
    """Where one seed's fits are cached (`<stem>-select.pt`, `<stem>-refit.pt`)."""
    return mc.work / f"{split_key}-{mc.fit_key()}-seed{seed}"


def run_seq_policy(
    world: ReplayWorld,
    parts: ReplayParts,
    cfg: TrainConfig,
    split: Any,
    split_key: str,
    seeds: tuple[int, ...],
    mc: SeqMethodConfig,
    save_bundle: Path | None = None,
    peer_settings: dict[str, dict[str, float]] | None = None,
) -> dict[str, list[MethodResult]]:
    """soft-q and its ablations, one `MethodResult` per seed (module docstring); `parts` =
    the served parts; the first seed's soft-q bundle is saved to `save_bundle` if given;
    `peer_settings`: the validation-chosen settings of the comparison's tuned peers (the
    prior's candidates reuse them)."""
    proto = seq_protocol(world.item_ids, cfg, split)
    priors = prior_candidates(mc, cfg, split, world.item_ids, peer_settings)
    test_idx = eval_decisions(world, cfg.max_eval_decisions, 0)
    out: dict[str, list[MethodResult]] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        policy, fitted = fitted_policy(proto, mc, seed, seed_stem(mc, split_key, seed), priors)
        pcfg, ch = policy.cfg, fitted["chosen_memory"]
        memory_s = time.perf_counter() - t0
        curve = [float(r["valid/q"]) for r in fitted["curve"]]
        info = {
            "seq_setting": {"setting": mc.setting, "epochs": mc.epochs, **GRID[mc.setting]},
            "chosen_memory": ch,
            "valid_curve": [
                {k: round(float(v), 5) for k, v in r.items() if k.startswith(("epoch", "valid"))}
                for r in fitted["curve"]
            ],
            "memory_valid": fitted["memory_valid"],
            "vote_valid": fitted["vote_valid"],
            "prior_valid": fitted["prior_valid"],
            "valid_rows": fitted["valid_rows"],
            "train_cpu_seconds": fitted["select_cpu_seconds"] + fitted["refit_cpu_seconds"],
            "refit_cpu_seconds": fitted["refit_cpu_seconds"],
            "load_and_memory_seconds": round(memory_s, 1),
        }
        variants = {
            "soft-q": pcfg,
            "no-prior": replace(pcfg, prior_weight=0.0),
            "q-only": replace(pcfg, case_weight=0.0),
            "ce-head": replace(pcfg, head="ce"),
            "cases-only": replace(pcfg, head="cases", case_k=ch["k_vote"]),
        }
        assert set(variants) == {"soft-q", *SEQ_ABLATIONS}, f"{sorted(variants)=}"
        if not mc.ablations:
            variants = {"soft-q": pcfg}
        for name, pc in variants.items():
            meta = {"mode": name, "dataset": cfg.data, "seed": seed}
            bundle = seq_bundle(policy.with_config(pc), parts, cfg, meta)
            if name == "soft-q" and seed == seeds[0] and save_bundle is not None:
                bundle.save(save_bundle)
            rec = bundle.recommender()
            rng = np.random.default_rng(seed)
            ev = run_pass(world, rec, cfg, test_idx, False, True, 0.0, rng)
            res = MethodResult(name, seed, list_metrics(world, ev.decisions))
            res.decisions = ev.decisions
            res.curve = curve if name == "soft-q" else []
            res.info = info if name == "soft-q" else {
                "head": pc.head, "case_k": pc.case_k, "case_weight": pc.case_weight,
                "prior_weight": pc.prior_weight}  # fmt: skip
            out.setdefault(name, []).append(res)
            log.info("%s seed %d: NDCG@10 %.4f", name, seed, res.metrics["ndcg@10"])
    return out
