"""The held-out memory benchmark on the scripted ledger family, over several seeds.

Per seed: a fresh family (`bench.research.ledger_family`), the rule-based agent (`LedgerLLMServer`)
behind the real OpenAI-compatible client, the real MCP tool server (in process) and the
held-out protocol of `bench.research.bench` (memory built on train tasks over `iterations`
passes, then every test task once with learning off). Across seeds, held-out rows are pooled as
(seed, task) pairs: per-mode accuracy with a bootstrap CI, paired differences between modes,
and how often the policy put a useful case (a success about the same registry) among the
cases it showed the planner.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.executor import ExecutorConfig
from agent.memory import MemoryMode
from bench.research.bench import BenchConfig, dataset_tools, run_bench
from bench.research.bench_summary import MODES, paired_modes
from bench.research.ledger_family import FamilyConfig, useful_choice, write_family
from recsys.memory.text_encoder import TextEncoder
from recsys.stats import bootstrap_ci, paired_ci

__all__ = ["FamilyBenchConfig", "plot_family", "run_family_bench"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FamilyBenchConfig:
    """One multi-seed run."""

    out_dir: Path
    """Per-seed data and run folders, plus results.json."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One family and one agent seed each."""
    iterations: int = 3
    """Passes over the train tasks that build memory."""
    modes: tuple[MemoryMode, ...] = MODES
    """Memory modes compared."""
    family: FamilyConfig = field(default_factory=lambda: FamilyConfig(registries=8))
    """Family size (its seed is replaced by each run's seed)."""


def _rows(records: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    return [
        {
            "row": f"{seed}:{r['task_id']}",
            "reward": float(r["reward"]),
            **{f"useful_{k}": v for k, v in useful_choice(r).items()},
        }
        for r in records
    ]


def run_family_bench(
    cfg: FamilyBenchConfig,
    encoder: Callable[[], TextEncoder],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every seed and pool the held-out rows; writes and returns `results.json`."""
    import dataclasses

    from agent.tools.client import ToolClient
    from agent.tools.config import ToolServerConfig
    from bench.research.ledger_server import LedgerLLMServer
    from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig

    per_mode: dict[str, list[dict[str, Any]]] = {str(m): [] for m in cfg.modes}
    per_seed = []
    for seed in cfg.seeds:
        data = cfg.out_dir / f"seed{seed}" / "data"
        _, corpus = write_family(data, dataclasses.replace(cfg.family, seed=seed))
        bench = BenchConfig(
            "ledger-family",
            data,
            cfg.out_dir / f"seed{seed}" / "run",
            modes=cfg.modes,
            iterations=cfg.iterations,
            heldout=0.5,  # unused: every family task carries its split
            split_seed=seed,
            # every ledger hit of a registry must reach the agent (4 hits of ~400 characters)
            executor=ExecutorConfig(
                tool_result_chars=4000, allowed_tools=dataset_tools("ledger-family")
            ),
        )
        with (
            LedgerLLMServer(seed) as srv,
            ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools,
        ):
            llm = OpenAIChatClient(OpenAIChatConfig(srv.base_url, "ledger-scripted", max_retries=0))
            res = run_bench(bench, llm, llm, tools, encoder())
        per_seed.append({"seed": seed} | {m: res["modes"][m] for m in cfg.modes})
        for mode in cfg.modes:
            path = bench.out_dir / mode / "heldout.jsonl"
            recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            per_mode[mode] += _rows(recs, seed)
        if progress is not None:
            held = {m: res["modes"][m]["heldout"]["reward"] for m in cfg.modes}
            progress(f"seed {seed}: held-out accuracy {held}")
    summary: dict[str, Any] = {}
    for name, rows in per_mode.items():
        acc = np.array([r["reward"] for r in rows])
        lo, hi = bootstrap_ci(acc)
        useful = np.array([r["useful_any"] for r in rows], float)
        ulo, uhi = bootstrap_ci(useful)
        summary[name] = {
            "heldout_accuracy": round(float(acc.mean()), 4),
            "heldout_accuracy_ci": [round(lo, 4), round(hi, 4)],
            "useful_case_chosen": round(float(useful.mean()), 4),
            "useful_case_chosen_ci": [round(ulo, 4), round(uhi, 4)],
            "n_rows": len(rows),
        }
    pairs = paired_modes(
        {
            m: [{"task_id": r["row"], "reward": r["reward"]} for r in rows]
            for m, rows in per_mode.items()
        }
    )
    useful_pairs = {}
    if "soft-q" in per_mode and "non-parametric" in per_mode:
        a = np.array([r["useful_any"] for r in per_mode["soft-q"]], float)
        b = np.array([r["useful_any"] for r in per_mode["non-parametric"]], float)
        diff, (lo, hi) = paired_ci(a, b)
        useful_pairs["soft-q - non-parametric"] = {
            "diff": round(diff, 4),
            "ci": [round(lo, 4), round(hi, 4)],
        }
    result = {
        "seeds": list(cfg.seeds),
        "iterations": cfg.iterations,
        "family": dataclasses.asdict(cfg.family),
        "encoder": encoder().name,
        "modes": summary,
        "paired_heldout": pairs,
        "paired_useful_case_chosen": useful_pairs,
        "per_seed": per_seed,
    }
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "results.json").write_text(json.dumps(result, indent=2))
    return result


def plot_family(result: dict[str, Any], path: Path) -> None:
    """Held-out accuracy and useful-case rate per mode with 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(result["modes"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in (
        (axes[0], "heldout_accuracy", "held-out accuracy"),
        (axes[1], "useful_case_chosen", "useful case among chosen"),
    ):
        vals = [result["modes"][m][key] for m in modes]
        cis = [result["modes"][m][f"{key}_ci"] for m in modes]
        err = np.array(
            [
                [v - lo for v, (lo, _) in zip(vals, cis, strict=True)],
                [hi - v for v, (_, hi) in zip(vals, cis, strict=True)],
            ]
        )
        ax.bar(
            modes, vals, yerr=err, capsize=4, color=["#3b7dd8", "#8a8a8a", "#c9c9c9"][: len(modes)]
        )
        ax.set_ylim(0, 1)
        ax.set_title(title)
    fig.suptitle(
        f"ledger family, encoder {result['encoder']}, {len(result['seeds'])} seeds, "
        f"{result['modes'][modes[0]]['n_rows']} held-out rows per mode (95% CI)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
