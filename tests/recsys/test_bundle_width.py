"""A model bundle whose Q network reads another number of features per candidate than this
version's scorer computes (one trained before the item features changed) is refused on load
with a message that says to train it again, instead of failing inside the first request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys.bundle import ModelBundle
from recsys.config import CaseBankConfig
from recsys.errors import BundleError
from recsys.memory.case_bank import CaseBank
from recsys.presets import online
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rl.learner import Learner


def _save(tmp_path: Path) -> Path:
    """An untrained items-scorer bundle over 4 items, saved."""
    core = online("items")
    ids = ["a", "b", "c", "d"]
    items = ItemTable(ids, [f"cat={i}" for i in ids], np.eye(4, 8, dtype=np.float32))
    bank = CaseBank(CaseBankConfig(index="flat"), 8)
    bundle = ModelBundle(core, Learner(core.learner, 8, 8), bank, items, Popularity(4))
    bundle.save(tmp_path / "b")
    return tmp_path / "b"


def test_a_bundle_of_another_feature_width_is_refused(tmp_path: Path) -> None:
    """Loading works as saved; with 17 features recorded it raises `BundleError`."""
    folder = _save(tmp_path)
    assert ModelBundle.load(folder).config.recommend.scorer == "items"
    info = json.loads((folder / "bundle.json").read_text())
    info["config"]["learner"]["q"]["feature_dim"] = 17
    (folder / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match=r"reads 17 features per candidate.*train it again"):
        ModelBundle.load(folder)
