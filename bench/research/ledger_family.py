"""A scripted task family where only a relevant past plan leads to the answer.

Each *registry* (family) keeps its access codes in one ledger document with an opaque name
(`ledger-kestrel`), next to `decoys` superseded ledgers with the same registry header and wrong
codes. Depot names come from one shared pool, so the same depot name occurs in several
registries. A task asks for the code of one depot of one registry:

    "What is the access code of depot Mill Lane East in the Harbor Indigo registry?"

Searching with the task's words finds the registry's ledgers but cannot tell the live one from
the decoys (same header, same depot lines), so an agent without memory picks one of `decoys + 1`
at random. A past case of the same registry that succeeded read the live ledger: imitating its
trajectory (read that document, find this task's depot) answers any depot of that registry.
A failed case names a decoy to avoid. Held-out tasks ask for (registry, depot) pairs never asked
in training, so copying a training answer never works; only the plan transfers. Similarity is
not usefulness here: the nearest past task by text is often the same depot in *another*
registry, whose ledger is useless for this one.

`write_family` writes `tasks.jsonl` (`task_id, question, answer, split, registry`) and
`corpus.jsonl` (`doc_id, title, text`) for `memento agent bench --dataset ledger-family`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FamilyConfig", "make_family", "registry_of", "useful_choice", "write_family"]

_ADJ = [
    "Harbor",
    "Indigo",
    "Amber",
    "Cedar",
    "Granite",
    "Willow",
    "Copper",
    "Falcon",
    "Maple",
    "Onyx",
    "Silver",
    "Birch",
    "Coral",
    "Ivory",
    "Juniper",
    "Lotus",
]
_CODENAMES = [
    "kestrel",
    "osprey",
    "heron",
    "plover",
    "curlew",
    "merlin",
    "tern",
    "wigeon",
    "bittern",
    "dunlin",
    "grebe",
    "lapwing",
    "shrike",
    "siskin",
    "thrush",
    "warbler",
    "avocet",
    "bunting",
    "corncrake",
    "dotterel",
    "eider",
    "fulmar",
    "gannet",
    "hobby",
    "jackdaw",
    "kittiwake",
    "linnet",
    "martin",
    "nightjar",
    "ouzel",
    "petrel",
    "quail",
    "redstart",
    "skua",
    "teal",
    "whimbrel",
    "wren",
    "yellowhammer",
    "pipit",
    "rook",
    "crake",
]
_PLACES = [
    "Mill Lane East",
    "North Quay Road",
    "Old Tannery Yard",
    "Station Hill West",
    "Canal Basin South",
    "Forge Street Upper",
    "Priory Gate North",
    "Lime Kiln Wharf",
    "Rope Walk Lower",
    "Glass House Row",
    "Weaver Court West",
    "Salt Marsh Lane",
]
_QUESTION = "What is the access code of depot {depot} in the {registry} registry?"
_REGISTRY = re.compile(r"in the (.+?) registry\?")


@dataclass(frozen=True)
class FamilyConfig:
    """Size of the generated family."""

    registries: int = 6
    """Families (one live ledger each)."""
    decoys: int = 3
    """Superseded ledgers per registry (chance of a blind pick = 1 / (decoys + 1))."""
    depots: int = 8
    """Depots per registry (each is one task), drawn from a shared pool of 12 names."""
    train_depots: int = 5
    """Depots of each registry in the training split; the rest are held out."""
    seed: int = 0
    """Seed of names, codes and the split."""


def registry_of(question: str) -> str | None:
    """The registry a family question is about (None for other questions)."""
    found = _REGISTRY.search(question)
    return found.group(1) if found else None


def make_family(cfg: FamilyConfig) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(tasks, corpus documents) of one seeded family."""
    need = cfg.registries * (cfg.decoys + 1)
    if cfg.registries > len(_ADJ) * 2 or need > len(_CODENAMES):
        raise ValueError(f"at most {len(_CODENAMES)} ledgers: {cfg.registries=} {cfg.decoys=}")
    if cfg.depots > len(_PLACES):
        raise ValueError(f"at most {len(_PLACES)} depots per registry, got {cfg.depots}")
    if not 0 < cfg.train_depots < cfg.depots:
        raise ValueError(f"train_depots must be in (0, {cfg.depots}), got {cfg.train_depots}")
    rng = random.Random(cfg.seed)
    names = rng.sample(_CODENAMES, need)
    adjs = rng.sample(_ADJ, min(len(_ADJ), cfg.registries * 2))
    tasks: list[dict[str, Any]] = []
    docs: list[dict[str, str]] = []
    for r in range(cfg.registries):
        registry = f"{adjs[2 * r]} {adjs[2 * r + 1]}"
        ledgers = names[r * (cfg.decoys + 1) : (r + 1) * (cfg.decoys + 1)]
        live = ledgers[0]
        codes: dict[str, list[int]] = {
            name: [rng.randrange(1000, 10000) for _ in range(cfg.depots)] for name in ledgers
        }
        order = list(ledgers)
        rng.shuffle(order)  # the live ledger's position among its decoys is random
        places = rng.sample(_PLACES, cfg.depots)
        for name in order:
            lines = [f"depot {places[d]}: code {codes[name][d]}" for d in range(cfg.depots)]
            docs.append(
                {
                    "doc_id": f"ledger-{name}",
                    "title": f"ledger {name}",
                    "text": f"Access codes, {registry} registry. " + ". ".join(lines) + ".",
                }
            )
        depots = list(range(1, cfg.depots + 1))
        rng.shuffle(depots)
        train = set(depots[: cfg.train_depots])
        for d in sorted(depots):
            tasks.append(
                {
                    "task_id": f"{live}-{d:02d}",
                    "question": _QUESTION.format(depot=places[d - 1], registry=registry),
                    "answer": str(codes[live][d - 1]),
                    "split": "train" if d in train else "test",
                    "registry": registry,
                }
            )
    rng.shuffle(tasks)
    return tasks, docs


def write_family(folder: Path, cfg: FamilyConfig) -> tuple[Path, Path]:
    """Write `tasks.jsonl` and `corpus.jsonl` under `folder`; returns their paths."""
    tasks, docs = make_family(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    tpath, cpath = folder / "tasks.jsonl", folder / "corpus.jsonl"
    tpath.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
    cpath.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (folder / "family.json").write_text(json.dumps(cfg.__dict__, indent=2))
    return tpath, cpath


def useful_choice(record: dict[str, Any], threshold: float = 0.5) -> dict[str, bool]:
    """For one task record: was a *useful* case (a success about the same registry) among the
    chosen cases, and was it the first one shown?"""
    registry = registry_of(str(record["question"]))
    useful = [
        float(c.get("reward", 0.0)) >= threshold and registry_of(str(c.get("task"))) == registry
        for c in record.get("chosen_cases", [])
    ]
    return {"any": any(useful), "first": bool(useful and useful[0])}
