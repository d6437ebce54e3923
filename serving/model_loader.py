"""Where the soft-Q core's model comes from: registry alias, local snapshot, or fresh.

A model directory (what replay training registers in MLflow, and what `checkpoint()` writes):

    core.json       {"config": config_to_dict(CoreConfig), "version": str, "base": str}
                    (optional for registered models: defaults, text encoder inferred from dim)
    learner.pt      `Learner.save` output (any single `*.pt` is accepted)
    bank/           `CaseBank.save` output (any folder holding `bank.json` is accepted)
    items.parquet   optional catalog (item_id, title)

Case payloads are the recommender's (`recsys.memory.case_encoder.rec_payload`: item_id, title,
action, user_summary); serving adds `sid` (its string case id) and `items`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recsys.config import (
    CaseBankConfig,
    CoreConfig,
    LearnerConfig,
    PolicyConfig,
    TextEncoderConfig,
    config_from_dict,
    config_to_dict,
)
from recsys.memory.case_bank import CaseBank
from recsys.rl.checkpoint import load_checkpoint
from recsys.rl.learner import Learner
from serving.errors import ServingError
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

CORE_FILE = "core.json"
LEARNER_FILE = "learner.pt"
BANK_DIR = "bank"
ITEMS_FILE = "items.parquet"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[^@/]+)$")


class ModelLoadError(ServingError):
    """The model directory or registry entry cannot be used."""


@dataclass
class LoadedModel:
    """A learner + case bank + the config they were built with."""

    config: CoreConfig
    """Full core config (text encoder, state, bank, learner, reward, credit)."""
    learner: Learner
    """Soft-Q learner (online config applied)."""
    bank: CaseBank
    """Case bank (in memory; merging disabled: serving de-duplicates by case id)."""
    version: str
    """Human-readable model version."""
    base: str
    """Version of the registered model this one descends from ('' for a fresh model)."""
    items_path: Path | None
    """The model's own catalog, if it ships one."""


def parse_models_uri(uri: str) -> tuple[str, str]:
    """`models:/name@alias` -> (name, alias)."""
    m = _MODELS_URI.match(uri.strip())
    if not m:
        raise ModelLoadError(f"MEMENTO_MODEL_URI must look like models:/NAME@ALIAS, got {uri!r}")
    return m["name"], m["alias"]


def online_learner_config(base: LearnerConfig, settings: ServingSettings) -> LearnerConfig:
    """The learner config with the online batch, warm-up and slate size from the settings."""
    policy = dataclasses.replace(base.policy, num_chosen=settings.num_chosen)
    return dataclasses.replace(
        base,
        batch_size=settings.online_batch_size,
        min_replay=settings.online_min_replay,
        policy=policy,
    )


def fresh_config(settings: ServingSettings) -> CoreConfig:
    """CoreConfig of a model built from the settings alone."""
    dim = 512 if settings.text_encoder == "use" else settings.text_dim
    return CoreConfig(
        text=TextEncoderConfig(kind=settings.text_encoder, dim=dim, threads=1),
        case_bank=CaseBankConfig(index=settings.index, top_k=settings.top_k, merge_threshold=2.0),
        learner=LearnerConfig(
            lr=settings.learner_lr,
            seed=settings.seed,
            policy=PolicyConfig(num_chosen=settings.num_chosen),
        ),
    )


def fresh_model(settings: ServingSettings) -> LoadedModel:
    """An untrained learner and an empty bank."""
    cfg = fresh_config(settings)
    dim = cfg.text.dim
    learner = Learner(online_learner_config(cfg.learner, settings), dim, dim)
    bank = CaseBank(cfg.case_bank, dim)
    return LoadedModel(cfg, learner, bank, "fresh", "", None)


def _find(root: Path, name: str, pattern: str) -> Path | None:
    if (root / name).exists():
        return root / name
    found = sorted(root.rglob(pattern))
    return found[0] if found else None


def _detached(bank: CaseBank) -> CaseBank:
    """Move a loaded bank's metadata into memory: `CaseBank.load` writes through to the files
    it was loaded from, which would put online cases into the snapshot (or registry copy)
    without their vectors, and break when the next snapshot replaces that folder."""
    mem = sqlite3.connect(":memory:", check_same_thread=False)
    bank._db.backup(mem)
    bank._db.close()
    bank._db, bank.path = mem, None
    return bank


def load_model_dir(root: Path, settings: ServingSettings, default_version: str) -> LoadedModel:
    """Load a model directory (layout in the module docstring)."""
    learner_path = _find(root, LEARNER_FILE, "*.pt")
    bank_json = _find(root / BANK_DIR, "bank.json", "bank.json") or _find(
        root, "bank.json", "bank.json"
    )
    if learner_path is None or bank_json is None:
        raise ModelLoadError(f"{root} holds no learner checkpoint (*.pt) or case bank (bank.json)")
    meta: dict[str, Any] = {}
    if (root / CORE_FILE).exists():
        meta = json.loads((root / CORE_FILE).read_text())
    ckpt = load_checkpoint(learner_path)
    learner_cfg = config_from_dict(LearnerConfig, ckpt["config"])
    dims = ckpt["state_dict"]["dims"]
    bank = _detached(CaseBank.load(bank_json.parent))
    if "config" in meta:
        cfg = config_from_dict(CoreConfig, meta["config"])
    else:
        kind: Literal["use", "hashing"] = "use" if bank.dim == 512 else "hashing"
        cfg = CoreConfig(text=TextEncoderConfig(kind=kind, dim=bank.dim, threads=1))
    cfg = dataclasses.replace(cfg, learner=learner_cfg, case_bank=bank.cfg)
    if int(dims["state_dim"]) != cfg.text.dim or bank.dim != cfg.text.dim:
        raise ModelLoadError(f"dims disagree: {dims=} bank={bank.dim} text={cfg.text.dim}")
    bank.cfg = dataclasses.replace(bank.cfg, merge_threshold=2.0)
    bank.index.cfg = bank.cfg
    learner = Learner(
        online_learner_config(learner_cfg, settings), int(dims["state_dim"]), int(dims["key_dim"])
    )
    learner.load_state_dict(ckpt["state_dict"])
    learner.step = int(ckpt["step"])
    items = root / ITEMS_FILE
    return LoadedModel(
        cfg,
        learner,
        bank,
        str(meta.get("version", default_version)),
        str(meta.get("base", default_version)),
        items if items.exists() else None,
    )


def save_snapshot(model: LoadedModel, dst: Path, *, with_bank: bool, version: str) -> None:
    """Write learner (+ bank) + core.json into `dst` atomically enough (tmp dir, then rename)."""
    dst.mkdir(parents=True, exist_ok=True)
    model.learner.save(dst / (LEARNER_FILE + ".tmp"))
    (dst / (LEARNER_FILE + ".tmp")).replace(dst / LEARNER_FILE)
    if with_bank:
        tmp = dst / (BANK_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.bank.save(tmp)
        old = dst / (BANK_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if (dst / BANK_DIR).exists():
            (dst / BANK_DIR).rename(old)
        tmp.rename(dst / BANK_DIR)
        shutil.rmtree(old, ignore_errors=True)
    meta = {"config": config_to_dict(model.config), "version": version, "base": model.base}
    (dst / (CORE_FILE + ".tmp")).write_text(json.dumps(meta))
    (dst / (CORE_FILE + ".tmp")).replace(dst / CORE_FILE)


def registry_model(settings: ServingSettings, dst: Path) -> tuple[Path, str]:
    """Download `settings.model_uri` from the MLflow registry; (folder, 'name@alias:<sha>')."""
    assert settings.model_uri, "no MEMENTO_MODEL_URI"
    name, alias = parse_models_uri(settings.model_uri)
    from training.tracking import ModelNotFoundError, TrackingConfig, download_model

    shutil.rmtree(dst, ignore_errors=True)
    try:
        folder = download_model(name, alias, dst, TrackingConfig(uri=settings.mlflow_uri))
    except ModelNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc
    learner = _find(folder, LEARNER_FILE, "*.pt")
    digest = hashlib.sha1(learner.read_bytes()).hexdigest()[:10] if learner else "empty"
    return folder, f"{name}@{alias}:{digest}"
