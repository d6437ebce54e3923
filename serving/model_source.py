"""Where the served model comes from: the MLflow registry alias, the local snapshot, or a
fresh untrained model over a catalogue file (`choose_bundle`), and the online settings applied to
a loaded learner (`online_learner`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from recsys.bundle import ModelBundle
from recsys.errors import BundleError
from recsys.memory.case_bank import CaseBank
from recsys.memory.text_encoder import build_text_encoder
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rl.learner import Learner
from serving.errors import ModelLoadError
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshot"
REGISTRY_DIR = "registry"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[^@/]+)$")


def parse_models_uri(uri: str) -> tuple[str, str]:
    """`models:/name@alias` -> (name, alias)."""
    m = _MODELS_URI.match(uri.strip())
    if not m:
        raise ModelLoadError(f"MEMENTO_MODEL_URI must look like models:/NAME@ALIAS, got {uri!r}")
    return m["name"], m["alias"]


def read_items_parquet(path: Path) -> tuple[list[str], list[str]]:
    """(item ids, titles) of a canonical `items.parquet` (an empty title -> the id)."""
    import polars as pl

    df = pl.read_parquet(path, columns=["item_id", "title"])
    ids = [str(i) for i in df["item_id"].to_list()]
    titles = [
        t if isinstance(t, str) and t.strip() else i
        for i, t in zip(ids, df["title"].to_list(), strict=True)
    ]
    return ids, titles


def online_learner(bundle: ModelBundle, settings: ServingSettings) -> None:
    """Give a loaded learner the online batch size, warm-up and list draw
    (`settings.fresh.learner`: whether and in how many slots the service explores is the
    service's choice; the SquareCB scale stays the model's, it depends on how it learned)."""
    lc, online = bundle.learner.cfg, settings.fresh.learner
    policy = dataclasses.replace(
        lc.policy, list_draw=online.policy.list_draw, explore_slots=online.policy.explore_slots
    )
    bundle.learner.cfg = dataclasses.replace(
        lc, batch_size=online.batch_size, min_replay=online.min_replay, policy=policy
    )


def fresh_bundle(settings: ServingSettings) -> ModelBundle:
    """An untrained model (`settings.fresh`): learner, empty bank, and the catalogue of
    `items_path` (if any)."""
    cfg = settings.fresh
    dim = cfg.text.width
    ids: list[str] = []
    titles: list[str] = []
    vecs = np.zeros((0, dim), np.float32)
    if settings.items_path is not None:
        ids, titles = read_items_parquet(settings.items_path)
        vecs = np.asarray(build_text_encoder(cfg.text).encode(titles), np.float32).reshape(-1, dim)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    items = ItemTable(ids, titles, vecs)
    learner = Learner(cfg.learner, dim, dim)
    return ModelBundle(
        cfg,
        learner,
        CaseBank(cfg.case_bank, dim),
        items,
        Popularity(len(items), half_life_hours=cfg.recommend.pop_half_life_hours),
        version="fresh",
    )


def registry_model(settings: ServingSettings, dst: Path) -> tuple[Path, str] | None:
    """Download `settings.model_uri` from the MLflow registry: (folder, 'name@alias:<sha>'),
    None when the registry has no such model and the URI is the default one."""
    assert settings.model_uri, "no model URI"
    name, alias = parse_models_uri(settings.model_uri)
    from tracking.registry import ModelNotFoundError, TrackingConfig, download_model

    shutil.rmtree(dst, ignore_errors=True)
    try:
        folder = download_model(name, alias, dst, TrackingConfig(uri=settings.mlflow_uri))
    except ModelNotFoundError as exc:
        if "model_uri" in settings.model_fields_set:
            raise ModelLoadError(str(exc)) from exc
        logger.info("no registered model %s@%s yet (run `memento train`)", name, alias)
        return None
    learner = folder / "learner.pt"
    digest = hashlib.sha1(learner.read_bytes()).hexdigest()[:10] if learner.exists() else "empty"
    return folder, f"{name}@{alias}:{digest}"


def _load(folder: Path) -> ModelBundle:
    try:
        return ModelBundle.load(folder)
    except BundleError as exc:
        raise ModelLoadError(str(exc)) from exc


def choose_bundle(settings: ServingSettings) -> tuple[ModelBundle, str, str]:
    """(bundle, version, source): registry alias, else the local snapshot, else fresh."""
    ckpt = settings.resolved_checkpoint_dir()
    snap = ckpt / SNAPSHOT_DIR
    snap_meta: dict[str, Any] = {}
    if ModelBundle.is_bundle(snap):
        snap_meta = json.loads((snap / "bundle.json").read_text()).get("meta", {})
    if settings.model_uri and settings.model_uri.lower() != "none":
        found = registry_model(settings, ckpt / REGISTRY_DIR)
        if found is not None:
            folder, version = found
            if snap_meta.get("base") == version:
                return _load(snap), version, f"snapshot of {version} ({snap})"
            bundle = _load(folder)
            bundle.meta["base"] = version
            return bundle, version, f"registered model {version}"
    if ModelBundle.is_bundle(snap):  # a fresh model's snapshot has empty meta: still ours
        bundle = _load(snap)
        return bundle, bundle.version or "snapshot", f"local snapshot {snap}"
    return fresh_bundle(settings), "fresh", "fresh model (no registered model or snapshot)"
