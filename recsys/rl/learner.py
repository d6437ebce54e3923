"""The learner shared by offline training and online serving.

Modes (`LearnerConfig.mode`):
- "soft-q": twin Q over (state, case) pairs trained with the soft TD target over the next
  state's own candidate snapshot (`recsys.rl.losses.soft_td_target`), Polyak target, policy
  softmax(min(Q1, Q2) / alpha), optional automatic alpha.
- "parametric-ce": the same network trained as a classifier of (reward > threshold)
  (Memento's parametric memory); policy softmax(logit / alpha).
- "non-parametric": cosine similarity only, greedy, no learning.
- "tabular": MemRL-style per-case Q (see `recsys.rl.tabular`), updated on `observe`.

`update()` takes an internal lock, so it may run on a background thread while `act()` serves;
it holds the weights' lock only around the optimiser step (scoring reads the weights before or
after a step, never a mix), not through its forward and backward passes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys.config import LearnerConfig
from recsys.errors import BundleError, NoCandidatesError
from recsys.records import CandidateBatch, Candidates, Choice, Transition
from recsys.rl.learner_part import OPTIMISER_KEYS, LearnerPart
from recsys.rl.losses import (
    alpha_loss,
    ce_loss,
    listwise_loss,
    soft_td_loss,
    soft_td_target,
)
from recsys.rl.policy import (
    entropy,
    greedy_top_m,
    masked_log_softmax,
    sample_without_replacement,
    score_order,
    slate_log_prob,
)
from recsys.rl.q_network import TwinQNetwork
from recsys.rl.replay import ReplayBuffer, collate_transitions
from recsys.rl.slotted import ExploreWindow, slotted_draw, squarecb_gamma
from recsys.rl.tabular import TabularQ

__all__ = ["Learner", "NoCandidatesError", "polyak_update"]


def _no_keys(c: Candidates) -> Candidates:
    """The same candidates with keys of width 0: no memory in the replay, none in a batch."""
    return dataclasses.replace(c, keys=np.zeros((len(c), 0), np.float32))


@torch.no_grad()
def polyak_update(
    target: nn.Module | Sequence[torch.Tensor],
    online: nn.Module | Sequence[torch.Tensor],
    tau: float,
) -> None:
    """target <- (1 - tau) * target + tau * online, parameter by parameter (modules, or their
    parameter lists in the same order), in one multi-tensor kernel per operation."""
    pt: list[torch.Tensor] = list(target.parameters() if isinstance(target, nn.Module) else target)
    po: list[torch.Tensor] = list(online.parameters() if isinstance(online, nn.Module) else online)
    assert len(pt) == len(po), f"{len(pt)=} {len(po)=}"
    torch._foreach_mul_(pt, 1.0 - tau)
    torch._foreach_add_(pt, po, alpha=tau)


class Learner:
    """Scores candidates, chooses cases, stores transitions and learns from them."""

    def __init__(
        self, cfg: LearnerConfig, state_dim: int, key_dim: int, device: str = "cpu"
    ) -> None:
        self.cfg = cfg
        self.state_dim = state_dim
        self.key_dim = key_dim
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)
        self.q = TwinQNetwork(cfg.q, state_dim, key_dim).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        # parameter lists read once (loading a state copies into these tensors in place);
        # multi-tensor (foreach) kernels for the step: the same numbers as one tensor at a time
        self._params: list[torch.Tensor] = list(self.q.parameters())
        self._target_params: list[torch.Tensor] = list(self.q_target.parameters())
        self.opt = torch.optim.Adam(self._params, lr=cfg.lr, foreach=True)
        self.log_alpha = torch.tensor(
            math.log(cfg.policy.alpha), device=self.device, requires_grad=cfg.policy.auto_alpha
        )
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.policy.alpha_lr)
        self.replay = ReplayBuffer(cfg.replay_capacity, seed=cfg.seed)
        self.tabular = TabularQ(cfg.tabular_lr, cfg.tabular_sim_weight)
        self.step = 0
        self._gen = torch.Generator().manual_seed(cfg.seed)
        self._rng = np.random.default_rng(cfg.seed)
        self._lock = threading.Lock()
        """The weights: scoring passes vs their in-place changes (optimiser step, loading)."""
        self._update_lock = threading.Lock()
        """The learning state: one update, state copy or load at a time (taken before
        `_lock`); an update's forward and backward passes hold it alone, so scoring goes on."""

    @property
    def mode(self) -> str:
        """The learner mode."""
        return self.cfg.mode

    @property
    def alpha(self) -> float:
        """Current temperature."""
        return float(self.log_alpha.detach().exp())

    def _batch(self, state: np.ndarray, cands: Candidates) -> tuple[torch.Tensor, CandidateBatch]:
        assert state.shape == (self.state_dim,), f"{state.shape=} {self.state_dim=}"
        s = torch.from_numpy(np.asarray(state, np.float32))[None].to(self.device)
        return s, CandidateBatch.from_candidates([cands]).to(self.device)

    def scores(self, state: np.ndarray, cands: Candidates) -> np.ndarray:
        """(K,) ranking scores: min twin Q (soft-q), logit (ce), sim, or 0.5 sim + 0.5 Q."""
        if self.mode == "non-parametric":
            return cands.sims.astype(np.float32)
        if self.mode == "tabular":
            return self.tabular.scores(cands.case_ids, cands.sims)
        s, b = self._batch(state, cands)
        with self._lock, torch.inference_mode():
            q1, q2 = self.q(s, b.keys, b.features)
        return torch.minimum(q1, q2)[0].cpu().numpy()

    def q_values(self, state: np.ndarray, cands: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """(K,), (K,) twin Q of the online network (any mode)."""
        s, b = self._batch(state, cands)
        with self._lock, torch.inference_mode():
            q1, q2 = self.q(s, b.keys, b.features)
        return q1[0].cpu().numpy(), q2[0].cpu().numpy()

    def act(
        self,
        state: np.ndarray,
        cands: Candidates,
        m: int,
        greedy: bool = False,
        bias: np.ndarray | None = None,
        window: ExploreWindow | None = None,
    ) -> Choice:
        """Choose up to m distinct valid cases (m: `RecommendConfig.num_chosen` in a model).

        soft-q / parametric-ce, unless greedy: the slotted explorer (`PolicyConfig.list_draw`
        "slotted", `recsys.rl.slotted`: score order but SquareCB in the exploration slots) or
        a Plackett-Luce draw from softmax(score / alpha) without replacement; non-parametric is
        always greedy; tabular is epsilon-greedy per slot. `bias` (K,): added to every mode's
        scores (the items scorer's residual, `recsys.rec.item_crosses`); `window` (a drift
        alarm's, `recsys.rl.slotted.ExploreWindow`) overrides slots, gamma and Q's weight."""
        n_valid = cands.num_valid
        if n_valid == 0:
            raise NoCandidatesError("no valid candidate to choose from")
        m = min(m, n_valid)
        raw = self.scores(state, cands)
        if window is not None and window.q_weight != 1.0:
            raw = (window.q_weight * raw).astype(np.float32)
        if bias is not None:
            assert bias.shape == raw.shape, f"{bias.shape=} {raw.shape=}"
            raw = (raw + bias).astype(np.float32)
        score = torch.from_numpy(raw)[None]
        mask = torch.from_numpy(cands.mask)[None]
        if self.mode == "tabular":
            return self._act_tabular(score[0].numpy(), cands, m, greedy)
        sampled = not greedy and self.mode != "non-parametric"
        if sampled and self.cfg.policy.list_draw == "slotted":
            return self._act_slotted(raw, cands, m, window)
        logp = masked_log_softmax(score, mask, self.alpha)
        if sampled:
            idx = sample_without_replacement(logp, m, self._gen)
        else:
            idx = greedy_top_m(score, mask, m, cands.case_ids[None])
        return Choice(
            indices=idx[0].numpy().astype(np.int64),
            case_ids=cands.case_ids[idx[0].numpy()],
            logp=logp[0, idx[0]].numpy().astype(np.float32),
            probs=logp[0].exp().numpy().astype(np.float32),
            slate_logp=float(slate_log_prob(logp, idx)[0]),
            scores=raw,
        )

    def _act_slotted(
        self, raw: np.ndarray, cands: Candidates, m: int, window: ExploreWindow | None
    ) -> Choice:
        """`slotted_draw`'s list, gamma from the update count; a window's settings where set."""
        pc = self.cfg.policy
        w = window or ExploreWindow(0)  # a window's 0 means the policy's own
        slots = w.slots or pc.explore_slots
        gamma = squarecb_gamma(w.gamma_scale or pc.squarecb_gamma_scale, self.step)
        d = slotted_draw(raw, cands.mask, cands.case_ids, m, slots, gamma, self._rng)
        logp = np.log(np.maximum(d.pscores, 1e-30)).astype(np.float32)
        return Choice(
            indices=d.indices,
            case_ids=cands.case_ids[d.indices],
            logp=logp,
            probs=d.first.astype(np.float32),
            slate_logp=float(logp.sum()),
            explored=d.explored,
            scores=raw,
        )

    def _act_tabular(self, score: np.ndarray, cands: Candidates, m: int, greedy: bool) -> Choice:
        valid = np.flatnonzero(cands.mask)
        order = score_order(score, cands)
        chosen: list[int] = []
        for slot in range(m):
            rest = [i for i in order if i not in chosen]
            if not greedy and self._rng.random() < self.cfg.tabular_epsilon:
                chosen.append(int(self._rng.choice(rest)))
            else:
                chosen.append(int(rest[0]))
            del slot
        eps = 0.0 if greedy else self.cfg.tabular_epsilon
        probs = np.zeros(len(cands), np.float32)
        probs[valid] = eps / len(valid)
        probs[order[0]] += 1.0 - eps
        idx = np.array(chosen, np.int64)
        logp = np.log(np.maximum(probs[idx], 1e-12)).astype(np.float32)
        return Choice(idx, cands.case_ids[idx], logp, probs, float(logp.sum()))

    def _stored(self, t: Transition) -> Transition:
        """`t` as the replay keeps it: a Q network without vectors never reads the keys, so
        they are stored with width 0 (no memory)."""
        if self.cfg.q.use_vectors:
            return t
        return dataclasses.replace(t, cands=_no_keys(t.cands), next_cands=_no_keys(t.next_cands))

    def observe(self, t: Transition) -> None:
        """Store a transition (tabular: also update the chosen cases' Q now)."""
        if self.mode == "tabular":
            self.tabular.update(t.cands.case_ids[t.chosen], t.rewards)
        elif self.mode != "non-parametric":
            self.replay.add(self._stored(t))

    def update(self, fresh: list[Transition] | None = None) -> dict[str, float]:
        """One gradient step on a replay batch; {} when nothing to learn yet (or no learning).

        fresh: transitions (already `observe`d) that this step must learn from: the batch is
        them plus `batch_size - len(fresh)` uniform replay samples (the online learner's
        batched step, `recsys.loop.MemoryLoop.train`); None: `batch_size` replay samples."""
        cfg = self.cfg
        if self.mode in ("tabular", "non-parametric"):
            return {}
        if len(self.replay) < max(cfg.min_replay, 1):
            return {}
        if fresh:
            items = [self._stored(t) for t in fresh]
            items += self.replay.sample_transitions(cfg.batch_size - len(items))
            batch = collate_transitions(items).to(self.device)
        else:
            batch = self.replay.sample(cfg.batch_size).to(self.device)
        with self._update_lock:  # the weights lock only around the in-place changes (below)
            alpha = self.log_alpha.detach().exp()
            q1, q2 = self.q(batch.state, batch.cands.keys, batch.cands.features)
            if self.mode == "soft-q":
                if cfg.gamma == 0:  # y = r + 0 * V(s') = r (V is finite): no pass over s'
                    y = batch.rewards
                else:
                    with torch.no_grad():
                        if batch.next_cands.mask.any():
                            n1, n2 = self.q_target(
                                batch.next_state, batch.next_cands.keys, batch.next_cands.features
                            )
                        else:  # every next set is empty (all terminal): V(s') = 0, no pass
                            n1 = n2 = torch.zeros(batch.next_cands.mask.shape, device=self.device)
                        y = soft_td_target(
                            batch.rewards,
                            batch.done,
                            n1,
                            n2,
                            batch.next_cands.mask,
                            cfg.gamma,
                            alpha,
                        )
                loss, metrics = soft_td_loss(q1, q2, batch.chosen, batch.chosen_mask, y)
                if cfg.listwise_weight > 0:
                    lw, lw_metrics = listwise_loss(
                        q1,
                        q2,
                        batch.chosen,
                        batch.chosen_mask,
                        batch.rewards,
                        batch.cands.mask,
                        alpha,
                    )
                    loss = loss + cfg.listwise_weight * lw
                    metrics.update(lw_metrics)
            else:
                loss, metrics = ce_loss(
                    q1, q2, batch.chosen, batch.chosen_mask, batch.rewards, cfg.ce_threshold
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = nn.utils.clip_grad_norm_(self._params, cfg.grad_clip, foreach=True)
            with self._lock:  # scoring sees the weights before or after the step, not a mix
                self.opt.step()
                polyak_update(self._target_params, self._params, cfg.tau)
            mask = batch.cands.mask
            logp = masked_log_softmax(torch.minimum(q1, q2).detach(), mask, alpha)
            if cfg.policy.auto_alpha:
                n_valid = mask.sum(-1).clamp(min=1).float()
                target = cfg.policy.target_entropy_ratio * torch.log(n_valid)
                a_loss, a_metrics = alpha_loss(self.log_alpha, logp, mask, target)
                self.alpha_opt.zero_grad(set_to_none=True)
                a_loss.backward()
                with self._lock:
                    self.alpha_opt.step()
                metrics.update(a_metrics)
            else:
                metrics["policy/entropy"] = float(entropy(logp, mask).mean())
            self.step += 1
        metrics.update(
            {
                "learner/step": float(self.step),
                "policy/alpha": self.alpha,
                "grad/norm": float(gnorm),
            }
        )
        return metrics

    def state_dict(self, *, optimiser: bool = True) -> dict[str, Any]:
        """A copy of everything needed to resume (networks, alpha, tabular Q, and the
        optimisers unless `optimiser` is False), taken under the locks so it is consistent."""
        with self._update_lock, self._lock:
            sd: dict[str, Any] = {
                "q": {k: v.detach().clone() for k, v in self.q.state_dict().items()},
                "q_target": {k: v.detach().clone() for k, v in self.q_target.state_dict().items()},
                "log_alpha": self.log_alpha.detach().clone(),
                "tabular": dict(self.tabular.q),
                "dims": {"state_dim": self.state_dim, "key_dim": self.key_dim},
            }
            if optimiser:
                sd["opt"] = copy.deepcopy(self.opt.state_dict())
                sd["alpha_opt"] = copy.deepcopy(self.alpha_opt.state_dict())
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Inverse of `state_dict`, in place (the optimisers keep their state when `sd` has
        none, the target network its own when `sd` has none: a publication)."""
        with self._update_lock, self._lock:
            self.q.load_state_dict(sd["q"])
            if "q_target" in sd:
                self.q_target.load_state_dict(sd["q_target"])
            if "opt" in sd:
                self.opt.load_state_dict(sd["opt"])
                self.alpha_opt.load_state_dict(sd["alpha_opt"])
                for group in self.opt.param_groups:  # a state saved before foreach steps
                    group["foreach"] = True
            with torch.no_grad():
                self.log_alpha.copy_(sd["log_alpha"])
            self.tabular.q = {int(k): float(v) for k, v in sd["tabular"].items()}

    # --- the bundle part (`recsys.rl.learner_part`) -------------------------------------------
    def part(self, *, optimiser: bool = True) -> LearnerPart:
        """This learner as a bundle part: a checkpoint with the optimiser state, a
        publication (what an acting copy needs) without it."""
        sd = self.state_dict(optimiser=optimiser)
        sd.pop("dims")
        opt = {k: sd.pop(k) for k in OPTIMISER_KEYS} if optimiser else None
        return LearnerPart(self.cfg, self.state_dim, self.key_dim, self.step, sd, opt)

    def apply_part(self, part: LearnerPart) -> None:
        """Load a part's weights and step in place (and its optimiser state when it has one);
        `BundleError` when its widths or mode differ from this learner's."""
        dims = (part.state_dim, part.key_dim, part.config.mode)
        if dims != (self.state_dim, self.key_dim, self.mode):
            raise BundleError(
                f"learner part (state, key, mode) {dims} does not fit this learner's "
                f"{(self.state_dim, self.key_dim, self.mode)}"
            )
        self.load_state_dict({**part.weights, **(part.optimiser or {})})
        self.step = part.step

    @classmethod
    def from_part(cls, part: LearnerPart, device: str = "cpu") -> Learner:
        """A learner rebuilt from a part (its config, sizes, weights, step and optimiser state
        when kept)."""
        learner = cls(part.config, part.state_dim, part.key_dim, device)
        learner.apply_part(part)
        return learner

    def save(self, path: str | Path) -> None:
        """Write the checkpoint part (with the optimiser state; the replay buffer is not
        saved)."""
        self.part().save(path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Learner:
        """Rebuild a learner from `save` output (a bundle's `learner.pt`)."""
        return cls.from_part(LearnerPart.load(path), device)
