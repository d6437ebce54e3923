"""Every model setting has one default: it is a field of `CoreConfig`'s tree and of no other
config class; presets are `CoreConfig()` plus the deviations they name; the fields that follow
the scorer are derived (`recsys.presets.derive`); bundles saved before the retired duplicates
still load."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from recsys.config import (
    CoreConfig,
    LearnerConfig,
    RecommendConfig,
    config_from_dict,
    config_to_dict,
)
from recsys.presets import PRESETS, derive, offline_replay, online
from recsys.rec.scorers import get_scorer

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recsys", "training", "serving", "agent", "bench", "data", "tracking", "memento")

ALLOWED: dict[tuple[str, str], str] = {
    ("LocalChatConfig", "threads"): "CPU threads of the chat LLM, not of the text encoder",
    ("OpenAIConfig", "mode"): "the OpenAI-compatible API mode, not a learner mode",
    ("RunnerConfig", "scorer"): "the research agent's answer scorer, not the recommend scorer",
    ("MemoryConfig", "mode"): "the research agent's own case-memory model (not the recommender)",
    ("MemoryConfig", "top_k"): "the research agent's own case-memory model: its K",
    ("MemoryConfig", "num_chosen"): "the research agent's own case-memory model: its m",
    ("MemoryConfig", "case_bank"): "the research agent's own case-memory model: its bank",
    ("MemoryConfig", "learner"): "the research agent's own case-memory model: its learner",
    ("BanditConfig", "dim"): "the synthetic bandit world of the learner benchmark",
    ("BanditConfig", "top_k"): "the synthetic bandit world of the learner benchmark",
    ("BanditConfig", "num_chosen"): "the synthetic bandit world of the learner benchmark",
    ("VWConfig", "exclude_seen"): "the Vowpal Wabbit peer's own setting",
    ("VWConfig", "seed"): "the Vowpal Wabbit peer's own seed",
    ("FamilyConfig", "seed"): "seed of a generated task family",
    ("SynthConfig", "seed"): "seed of the synthetic data generator",
    ("LoadConfig", "seed"): "the load benchmark's traffic seed",
    ("SoakConfig", "seed"): "the soak benchmark's traffic seed",
    ("LoadConfig", "dim"): "a load-benchmark variable, set into the served model's `fresh`",
    ("LoadConfig", "index"): "a load-benchmark variable, set into the served model's `fresh`",
    ("PlantedConfig", "w_pop"): "the simulated users' taste for popular items",
}
"""(class, field) whose name is also a model setting's but whose meaning is its own."""

PENDING: dict[str, str] = {
    "SeqModelConfig": "the sequence policy's encoder (its scorer joins CoreConfig later)",
    "SQNConfig": "the sequence policy's soft-Q heads (its own alpha, gamma, tau until then)",
    "SeqFitConfig": "the sequence policy's trainer (its own lr, batch, seed until then)",
}
"""Model schemas beside `CoreConfig` that a later change folds into it: their fields are not
checked yet; each entry must still exist (a folded one fails the test until removed)."""


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted path: value} of every non-dataclass field below a config instance."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.update(leaves(v, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = v
    return out


def component_classes(cls: type = CoreConfig) -> set[str]:
    """Names of the dataclasses composed into `cls` (its sub-configs, recursively)."""
    out: set[str] = set()
    for hint in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(hint):
            out |= {hint.__name__, *component_classes(hint)}
    return out


def config_fields(source: str) -> list[tuple[str, str, str, int]]:
    """(class, field, annotation, line) of every annotated field of a class named *Config or
    *Settings in one module's source."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name.endswith(("Config", "Settings")):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    ann = ast.unparse(stmt.annotation)
                    out.append((node.name, stmt.target.id, ann, stmt.lineno))
    return out


SCHEMA = ("recsys/config.py", "recsys/config_recommend.py")
"""The modules of the model schema (`CoreConfig` and its parts)."""


def redeclared(source: str, where: str) -> list[str]:
    """Fields of config classes outside the schema (`SCHEMA`) that re-declare a model setting:
    a field named like a leaf of `CoreConfig`, or one typed as one of its components."""
    names = {path.rsplit(".", 1)[-1] for path in leaves(CoreConfig())}
    parts = component_classes()
    bad = []
    for cls, name, ann, line in config_fields(source):
        if (cls, name) in ALLOWED or cls in PENDING:
            continue
        if name in names:
            bad.append(f"{where}:{line} {cls}.{name} re-declares the model setting {name!r}")
        elif any(p in ann.replace("|", " ").replace("[", " ").split() for p in parts):
            bad.append(f"{where}:{line} {cls}.{name}: {ann} holds model settings outside core")
    return bad


def test_no_config_class_redeclares_a_model_setting() -> None:
    """No config class of any package (TrainConfig, CompareConfig, ServingSettings, ...)
    has a field named like a setting of `CoreConfig` or typed as one of its parts."""
    bad: list[str] = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in SCHEMA:
                bad += redeclared(path.read_text(), rel)
    assert not bad, "\n".join(bad)
    scanned = {
        c
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        for c, *_ in config_fields(p.read_text())
    }
    assert {"TrainConfig", "CompareConfig", "ServingSettings", "ParityConfig"} <= scanned
    gone = sorted(set(PENDING) - scanned)
    assert not gone, f"no longer separate schemas, remove them from PENDING: {gone}"


def test_the_check_finds_a_planted_duplicate() -> None:
    """The scan reports a planted re-declaration (by name, and by a component type) and
    leaves a class of operational fields alone."""
    planted = (
        "class TrainConfig:\n    data: str = 'x'\n    alpha: float = 0.02\n"
        "class ServingSettings(BaseSettings):\n    port: int = 1\n"
        "    learner: LearnerConfig = LearnerConfig()\n"
        "class ClockConfig:\n    tick_s: float = 1.0\n    fresh: CoreConfig | None = None\n"
    )
    bad = redeclared(planted, "planted.py")
    assert len(bad) == 2, bad
    assert "TrainConfig.alpha" in bad[0] and "ServingSettings.learner" in bad[1]


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("scorer", ["blend", "items"])
def test_presets_are_the_defaults_plus_the_deviations_they_name(name: str, scorer: str) -> None:
    """A preset differs from `CoreConfig()` (same scorer, derived) only in fields its docstring
    names, and every field it names exists: presets are named constructors, not copies."""
    preset = PRESETS[name](scorer)
    base = derive(CoreConfig(recommend=RecommendConfig(scorer=scorer)))  # type: ignore[arg-type]
    mine, default = leaves(preset), leaves(base)
    changed = {p for p in mine if mine[p] != default[p]}
    doc = " ".join((PRESETS[name].__doc__ or "").split())
    unnamed = sorted(p for p in changed if f"`{p}`" not in doc)
    assert not unnamed, f"{name} changes {unnamed} without naming them"
    named = {w.strip("`") for w in doc.split() if w.startswith("`") and "." in w}
    named = {w.rstrip("`,;:") for w in named}
    assert named <= set(mine), sorted(named - set(mine))


def test_train_and_serving_defaults_are_the_presets() -> None:
    """`TrainConfig().core` is the offline-replay preset and a fresh served model the online
    one; their settings are no copies of a default (one field each)."""
    from serving.settings import ServingSettings
    from training.config import TrainConfig

    assert TrainConfig().core == offline_replay()
    assert ServingSettings(model_uri="none").fresh == online()
    assert offline_replay().learner.policy.alpha != online().learner.policy.alpha  # a preset
    assert leaves(offline_replay())["recommend.num_chosen"] == RecommendConfig().num_chosen


@pytest.mark.parametrize("scorer", ["blend", "items"])
def test_dependent_fields_are_derived_from_the_scorer(scorer: str) -> None:
    """`derive` sets the feature width of the scorer whatever is passed in, zeroes the blend's
    listwise weight and feeds it vectors, keeps the items scorer's configured ones; every
    model that `TrainConfig` or `ServingSettings` holds is derived; the text width is USE's 512
    for "use" and `dim` for hashing."""
    from serving.settings import ServingSettings
    from training.config import TrainConfig

    lc = LearnerConfig(listwise_weight=0.7)
    lc = dataclasses.replace(lc, q=dataclasses.replace(lc.q, feature_dim=99, use_vectors=False))
    raw = CoreConfig(learner=lc, recommend=RecommendConfig(scorer=scorer))  # type: ignore[arg-type]
    core = derive(raw)
    items = get_scorer(scorer).chooses_items
    assert core.learner.q.feature_dim == get_scorer(scorer).feature_width != 99
    assert core.learner.listwise_weight == (0.7 if items else 0.0)
    assert core.learner.q.use_vectors is (not items)
    assert derive(core) == core and derive(CoreConfig()) == CoreConfig()
    assert TrainConfig(core=raw).core == core
    assert ServingSettings(model_uri="none", fresh=raw).fresh == core
    hashing = dataclasses.replace(online().text, kind="hashing")
    assert (online().text.width, hashing.width) == (512, 64)


def test_bundles_saved_with_the_retired_duplicates_still_load() -> None:
    """A bundle config written before K and m had one home (`case_bank.top_k`,
    `learner.policy.num_chosen`) loads, keeps the bundle's `recommend` K and m, and an
    unknown key still fails."""
    old = config_to_dict(offline_replay())
    old["case_bank"]["top_k"] = 32
    old["learner"]["policy"]["num_chosen"] = 8
    cfg = config_from_dict(CoreConfig, old)
    assert cfg == offline_replay()
    assert (cfg.recommend.top_k, cfg.recommend.num_chosen) == (64, 8)
    old["recommend"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        config_from_dict(CoreConfig, old)
