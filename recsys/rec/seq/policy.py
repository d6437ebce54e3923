"""`SeqPolicy`: a trained sequence soft-Q model and its case memory as one scoring policy.

For R histories (each the user's events in split order) and their decision times it scores
every catalogue item (issue 26):

    soft-q:  base(s, i) = policy_logits(s, i) + w * vote_K(s, i)           (R, N)
             log pi(i | s) = base(s, i) + v * sd_i(base(s, .)) * z_i(prior(s, .))
    ce:      the supervised next-item head alone (the encoder as a plain sequential recommender)
    cases:   vote_K(s, i) alone (the case memory without Q)

`policy_logits` is softmax(Q / alpha)'s logit (`recsys.rl.sqn.policy_logits`: min of the twin
heads, with the supervised head as prior when `SQNConfig.prior`); `vote_K` is the case memory
(`recsys.rec.seq.case_vote`), searched as of each decision; `prior` is an item x item matrix
read through the history (`recsys.rec.seq.item_prior`), standardised per row (z) and scaled
by the spread (sd) of the row's base scores, so its weight v is scale-free. The greedy list is
the argmax order of these scores over the unseen items. `w = 0` switches memory off (Q without
cases); `v = 0` the prior.

The policy travels as a folder (`save` / `load`): `seq.pt` (model config, weights, settings),
`cases/` (the case bank keyed by the learned state) and `prior.npz` (the item prior, if any).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from recsys.rec.seq.batch import UserSequence, histories_batch, windows
from recsys.rec.seq.case_vote import CaseVote
from recsys.rec.seq.config import SeqModelConfig
from recsys.rec.seq.item_prior import ItemPrior, standardised
from recsys.rec.seq.model import SeqQModel, last_states, transition_states
from recsys.rl.sqn import SQNConfig, policy_logits

__all__ = ["SeqHead", "SeqPolicy", "SeqPolicyConfig", "SeqScores"]

SeqHead = Literal["soft-q", "ce", "cases"]
"""Which scores rank the items (module docstring)."""


@dataclass(frozen=True)
class SeqPolicyConfig:
    """How a trained model ranks (chosen on validation; none of it is trained)."""

    head: SeqHead = "soft-q"
    """soft-q: policy logits + case_weight * vote; ce: supervised head; cases: vote alone."""
    case_k: int = 100
    """K: nearest past situations that vote."""
    case_weight: float = 8.0
    """w: weight of the vote added to the policy logits (0 = memory off)."""
    prior_weight: float = 0.0
    """v: weight of the standardised item prior (0 = off; soft-q only)."""
    sqn: SQNConfig = field(default_factory=SQNConfig)
    """The training run's soft-Q constants (alpha and the prior decide the policy logits)."""


@dataclass(frozen=True)
class SeqScores:
    """Every head's scores for R decisions (numpy)."""

    states: np.ndarray
    """(R, d) learned states after each history's latest event."""
    ce: np.ndarray
    """(R, N) supervised next-item logits."""
    policy: np.ndarray
    """(R, N) policy logits from Q (log softmax(Q / alpha) up to a per-row constant)."""


class SeqPolicy:
    """A trained `SeqQModel` + its case memory, ranking by `cfg` (module docstring)."""

    def __init__(
        self,
        model: SeqQModel,
        memory: CaseVote | None,
        cfg: SeqPolicyConfig,
        prior: ItemPrior | None = None,
    ) -> None:
        self.model = model.eval()
        self.memory = memory
        self.cfg = cfg
        self.prior = prior
        if prior is not None:
            assert prior.n_items == model.cfg.n_items, f"{prior.n_items=} {model.cfg.n_items=}"

    @property
    def n_items(self) -> int:
        """N: items 1..N are scored (column i - 1 is item i)."""
        return self.model.cfg.n_items

    def with_config(self, cfg: SeqPolicyConfig) -> SeqPolicy:
        """The same model and memory ranking by other settings (an ablation)."""
        return SeqPolicy(self.model, self.memory, cfg, self.prior)

    def with_prior(self, prior: ItemPrior | None) -> SeqPolicy:
        """The same model, memory and settings with another item prior."""
        return SeqPolicy(self.model, self.memory, self.cfg, prior)

    def heads(self, histories: Sequence[UserSequence]) -> SeqScores:
        """States, supervised logits and policy logits of R non-empty histories."""
        mc = self.model.cfg
        h = last_states(self.model, histories_batch(histories, mc.max_len, mc.n_gaps))
        with torch.no_grad():
            hd = self.model.heads(h)
            q = policy_logits(hd.logits, torch.minimum(hd.q1, hd.q2), self.cfg.sqn)
        return SeqScores(h.numpy(), hd.logits.numpy(), q.numpy())

    def votes(
        self, states: np.ndarray, before: np.ndarray, ks: Sequence[int]
    ) -> dict[int, np.ndarray]:
        """{k: (R, N) vote} of the case memory as of each decision time (zeros without one)."""
        if self.memory is None:
            return {k: np.zeros((len(states), self.n_items)) for k in ks}
        return self.memory.votes(states, before, ks)

    def combine(
        self, sc: SeqScores, votes: dict[int, np.ndarray], prior: np.ndarray | None = None
    ) -> np.ndarray:
        """(R, N) scores of `cfg.head` from the heads, the votes (`votes[cfg.case_k]`) and the
        (R, N) item prior (needed when `cfg.prior_weight` is not 0)."""
        c = self.cfg
        if c.head == "ce":
            return sc.ce
        if c.head == "cases":
            return votes[c.case_k]
        base = sc.policy + c.case_weight * votes[c.case_k] if c.case_weight else sc.policy
        if not c.prior_weight:
            return base
        assert prior is not None, "prior_weight set without prior scores"
        spread = base.std(axis=1, keepdims=True)
        return base + c.prior_weight * spread * standardised(prior)

    def prior_scores(self, histories: Sequence[UserSequence]) -> np.ndarray | None:
        """(R, N) item prior of the histories, or None when the policy does not read one."""
        if self.cfg.head != "soft-q" or not self.cfg.prior_weight:
            return None
        if self.prior is None:
            raise ValueError("the policy's prior_weight is set but it has no item prior")
        return self.prior.scores(histories)

    def scores(self, histories: Sequence[UserSequence], before: np.ndarray) -> np.ndarray:
        """(R, N) scores of R non-empty histories decided at `before` (R,) unix seconds."""
        assert len(histories) == len(before), f"{len(histories)=} {before.shape=}"
        sc = self.heads(histories)
        needs_vote = self.cfg.head == "cases" or (
            self.cfg.head == "soft-q" and self.cfg.case_weight != 0
        )
        votes = self.votes(sc.states, before, [self.cfg.case_k]) if needs_vote else {}
        return self.combine(sc, votes, self.prior_scores(histories))

    # -- building and persistence ------------------------------------------------------------
    @classmethod
    def build(
        cls, model: SeqQModel, sequences: Sequence[UserSequence], cfg: SeqPolicyConfig
    ) -> SeqPolicy:
        """The policy of a trained model with a case memory of every transition of
        `sequences`: key = learned state s_t, payload = the item that followed, logged at
        that item's time."""
        mc = model.cfg
        data = windows(list(sequences), mc.max_len, mc.n_gaps)
        memory = CaseVote(mc.dim, mc.n_items)
        if len(data.items):
            states = transition_states(model, data).numpy()
            has = data.has_target
            memory.write(states, data.targets[has].numpy(), data.target_ts[has].numpy())
        return cls(model, memory, cfg)

    def save(self, folder: str | Path) -> Path:
        """Write `seq.pt` (model config, weights, settings) and `cases/` to `folder`."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        c = self.cfg
        settings = {"head": c.head, "case_k": c.case_k, "case_weight": c.case_weight,
                    "prior_weight": c.prior_weight, "sqn": asdict(c.sqn)}  # fmt: skip
        blob = {"model": asdict(self.model.cfg), "state_dict": self.model.state_dict(),
                "settings": settings}  # fmt: skip
        torch.save(blob, out / "seq.pt")
        if self.memory is not None:
            self.memory.save(out / "cases")
        if self.prior is not None:
            self.prior.save(out / "prior.npz")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> SeqPolicy:
        """Rebuild a policy written by `save`."""
        src = Path(folder)
        blob = torch.load(src / "seq.pt", map_location="cpu", weights_only=True)
        model = SeqQModel(SeqModelConfig(**blob["model"]))
        model.load_state_dict(blob["state_dict"])
        s = dict(blob["settings"])
        cfg = replace(SeqPolicyConfig(), **{**s, "sqn": SQNConfig(**s["sqn"])})
        memory = (
            CaseVote.load(src / "cases", model.cfg.n_items) if (src / "cases").is_dir() else None
        )
        prior = ItemPrior.load(src / "prior.npz") if (src / "prior.npz").is_file() else None
        return cls(model, memory, cfg, prior)

    @staticmethod
    def is_policy(folder: str | Path) -> bool:
        """Whether `folder` holds a saved policy."""
        return (Path(folder) / "seq.pt").is_file()
