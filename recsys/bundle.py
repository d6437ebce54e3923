"""`ModelBundle`: THE model directory. Training writes it, the registry stores it, serving loads it.

    bundle.json        {"format": 1, "version", "config": CoreConfig, "dims", "meta"}
    learner.pt         the learner part, `LearnerPart` (config, step, weights, optimiser state,
                       + the items scorer's cross model when the model has one)
    bank/              `CaseBank.save` (faiss index + case metadata)
    items.parquet      the catalogue: item_id (string), title
    item_vecs.npy      (I, d) float32 item vectors (title vectors, + collaborative part)
    popularity.npz     the popularity event log (item row, unix time), `Popularity`
    cooccurrence.npz   optional co-occurrence counts (the item-kNN term), `Cooccurrence`
    seq/               optional learned sequence policy (`SeqPolicy.save`), the `seq` scorer's

Parts travel on their own in the same formats: the learner part without its optimiser state
is what the shared learner of `memento serve --replicas N` publishes per model version and what
the Ray learner actor of `memento train --engine ray` broadcasts (`ModelBundle.learner_part`,
`LearnerPart.to_bytes`). An agent memory folder (`agent.memory.AgentMemory.save`) is two parts
of this layout, `bank/` and `learner.pt`, with `memory.json` (mode, encoder) in the place of
`bundle.json`: it has no catalogue, so it is not a loadable bundle.

Everything the recommend pipeline uses is in here, so `bundle.recommender()` answers offline
evaluation and the service with the same signals. `load` refuses an unknown format or a
directory with a part missing (`BundleError`), never guesses defaults.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recsys.config import CoreConfig, config_from_dict, config_to_dict
from recsys.errors import BundleError
from recsys.llm.protocol import FrozenLLM
from recsys.loop import MemoryLoop
from recsys.memory.case_bank import CaseBank
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.item_crosses import ItemCrosses, crosses_for
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.recommender import Recommender
from recsys.rec.scorers import get_scorer
from recsys.rec.seq.policy import SeqPolicy
from recsys.rl.learner import Learner
from recsys.rl.learner_part import LearnerPart

__all__ = ["BUNDLE_FORMAT", "BUNDLE_JSON", "LearnerPart", "ModelBundle"]

BUNDLE_FORMAT = 1
"""Layout version written to `bundle.json`; `load` accepts only this one."""
BUNDLE_JSON = "bundle.json"
_PARTS = ("learner.pt", "bank/bank.json", "items.parquet", "item_vecs.npy", "popularity.npz")


@dataclass
class ModelBundle:
    """A trained (or fresh) model: every part the recommend pipeline and the learner need."""

    config: CoreConfig
    """Text encoder, state, case bank, learner, reward, credit and recommend settings."""
    learner: Learner
    """The case policy (twin Q network and its mode)."""
    bank: CaseBank
    """Case memory."""
    items: ItemTable
    """The catalogue (rows, ids, titles, vectors)."""
    popularity: Popularity
    """Popularity event log."""
    cooc: Cooccurrence | None = None
    """Co-occurrence counts (item-kNN term), when the blend uses them."""
    version: str = ""
    """Content version (hash of the learner weights and sizes) unless set."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free provenance: dataset, mode, trained_until, ..."""
    seq: SeqPolicy | None = None
    """The learned sequence policy (required by the `seq` scorer)."""
    crosses: ItemCrosses | None = None
    """The items scorer's cross model (`RecommendConfig.item_crosses_lr`; a new one when that
    is > 0 and none is given, else None); it travels in the learner part."""

    def __post_init__(self) -> None:
        if self.crosses is None:
            self.crosses = crosses_for(self.config.recommend)

    @property
    def dim(self) -> int:
        """State / key / item vector width."""
        return self.items.dim

    def recommender(
        self, llm: FrozenLLM | None = None, updates_per_learn: float = 1.0
    ) -> Recommender:
        """The pipeline over this bundle's parts (shared objects, not copies)."""
        loop = MemoryLoop(self.learner, updates_per_learn)
        return Recommender(
            self.config.recommend,
            self.config.state,
            self.items,
            self.bank,
            self.popularity,
            loop,
            self.cooc,
            llm,
            self.config.credit,
            self.seq,
            self.crosses,
        )

    def learner_part(self, *, optimiser: bool = True) -> LearnerPart:
        """The learner part (`learner.pt`), with the cross model: a checkpoint with the
        optimiser (and AdaGrad) state, the per-version publication without it."""
        part = self.learner.part(optimiser=optimiser)
        if self.crosses is None:
            return part
        return replace(part, crosses=self.crosses.state(optimiser=optimiser))

    def apply_learner_part(self, part: LearnerPart) -> None:
        """Load a learner part in place (`Learner.apply_part`), and its cross model into this
        one's (a part without one, or a model without one, leaves this model's as it is).
        Each is swapped whole: a request in flight scores with the old or the new Q, the old or
        the new cross table, never a mix within either."""
        self.learner.apply_part(part)
        if part.crosses is not None and self.crosses is not None:
            self.crosses.load(part.crosses)

    def save(self, folder: str | Path, *, with_bank: bool = True) -> Path:
        """Write the bundle to `folder` (created; a bank already there is kept when
        `with_bank` is False). Parts are written to temporary names, then renamed."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.learner_part().save(out / "learner.pt")
        if with_bank or not (out / "bank" / "bank.json").exists():
            tmp, old = out / "bank.tmp", out / "bank.old"
            shutil.rmtree(tmp, ignore_errors=True)
            self.bank.save(tmp)
            shutil.rmtree(old, ignore_errors=True)
            if (out / "bank").exists():
                (out / "bank").rename(old)
            tmp.rename(out / "bank")
            shutil.rmtree(old, ignore_errors=True)
        self.items.save(out)
        self.popularity.save(out / "popularity.npz")
        if self.cooc is not None:
            self.cooc.save(out / "cooccurrence.npz")
        if self.seq is not None:
            self.seq.save(out / "seq")
        info = {
            "format": BUNDLE_FORMAT,
            "version": self.version or self.content_version(),
            "config": config_to_dict(self.config),
            "dims": {"state": self.learner.state_dim, "key": self.learner.key_dim},
            "meta": self.meta,
        }
        (out / (BUNDLE_JSON + ".tmp")).write_text(json.dumps(info, indent=1, ensure_ascii=False))
        (out / (BUNDLE_JSON + ".tmp")).replace(out / BUNDLE_JSON)
        return out

    def content_version(self) -> str:
        """A short hash of the weights' step, the bank size and the catalogue size."""
        h = hashlib.sha1(
            f"{self.learner.step}|{len(self.bank)}|{len(self.items)}|{len(self.popularity)}"
            f"|{self.learner.mode}".encode()
        )
        return h.hexdigest()[:10]

    @staticmethod
    def is_bundle(folder: str | Path) -> bool:
        """Whether `folder` holds a bundle.json."""
        return (Path(folder) / BUNDLE_JSON).is_file()

    @classmethod
    def load(cls, folder: str | Path, *, detach: bool = True) -> ModelBundle:
        """Read a bundle written by `save`.

        detach: keep the bank's metadata in memory instead of writing through to the files it
        was loaded from (a served bundle learns; its folder may be a registry copy)."""
        src = Path(folder)
        if not (src / BUNDLE_JSON).is_file():
            raise BundleError(f"{src} is not a model bundle: no {BUNDLE_JSON}")
        info = json.loads((src / BUNDLE_JSON).read_text())
        if info.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{src}: bundle format {info.get('format')!r}, this version reads {BUNDLE_FORMAT}"
            )
        missing = [p for p in _PARTS if not (src / p).exists()]
        if missing:
            raise BundleError(f"{src}: bundle is missing {', '.join(missing)}")
        cfg = config_from_dict(CoreConfig, info["config"])
        width = get_scorer(cfg.recommend.scorer).feature_width
        if cfg.learner.q.feature_dim != width:
            raise BundleError(
                f"{src}: its Q network reads {cfg.learner.q.feature_dim} features per candidate,"
                f" this version's {cfg.recommend.scorer} scorer computes {width}: train it again"
            )
        part = LearnerPart.load(src / "learner.pt")
        learner = Learner.from_part(part)
        bank = CaseBank.load(src / "bank")
        if detach:
            mem = sqlite3.connect(":memory:", check_same_thread=False)
            bank._db.backup(mem)
            bank._db.close()
            bank._db, bank.path = mem, None
        items = ItemTable.load(src)
        dims = {"items": items.dim, "bank": bank.dim, "learner": learner.state_dim}
        if len(set(dims.values())) != 1:
            raise BundleError(f"{src}: vector widths disagree: {dims}")
        pop = Popularity.load(src / "popularity.npz")
        if pop.n_items < len(items):
            pop.grow(len(items))
        cooc_path = src / "cooccurrence.npz"
        cooc = Cooccurrence.load(cooc_path) if cooc_path.exists() else None
        seq = SeqPolicy.load(src / "seq") if SeqPolicy.is_policy(src / "seq") else None
        if seq is None and cfg.recommend.scorer == "seq":
            raise BundleError(f"{src}: the seq scorer's model is missing (seq/seq.pt)")
        version, meta = str(info.get("version", "")), info.get("meta", {})
        bundle = cls(cfg, learner, bank, items, pop, cooc, version, meta, seq)
        if part.crosses is not None and bundle.crosses is not None:
            bundle.crosses.load(part.crosses)
        return bundle
