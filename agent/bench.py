"""Benchmark runner: iterations over a task set, per memory mode, giving the
continual-learning curve (accuracy per iteration with and without case memory).

Layout under `out_dir`: `corpus.jsonl` (HotpotQA closed corpus: every paragraph of every
question pooled), and per mode `<mode>/iter<i>.jsonl` (one full `TaskRecord` per line) plus
`<mode>/learner.pt`. A rerun skips tasks already logged: their cases are rewritten into a fresh
bank in the original order and the learner checkpoint is reloaded (the replay buffer is not).
`run.json` holds the run's fingerprint (dataset, models, encoder and every setting but the modes
and the number of iterations): a rerun with another fingerprint is refused
(`RunMismatchError`), so results of one model are never reported under another's name.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.bench_data import Task, load_tasks, write_hotpot_corpus
from agent.errors import RunMismatchError
from agent.executor import Executor, ExecutorConfig, ToolRunner
from agent.memory import AgentMemory, MemoryConfig, MemoryMode
from agent.planner import Planner, PlannerConfig
from agent.runner import AgentRunner, RunnerConfig
from recsys.llm.chat import ChatClient
from recsys.memory.text_encoder import TextEncoder

__all__ = [
    "BenchConfig",
    "bench_tools_args",
    "check_fingerprint",
    "dataset_tools",
    "run_bench",
    "run_fingerprint",
    "summarize_mode",
]

log = logging.getLogger(__name__)
MODES: tuple[MemoryMode, ...] = ("soft-q", "non-parametric", "no-memory")


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    dataset: str
    """hotpotqa-closed | gaia | simpleqa | deepresearcher."""
    path: Path
    """The user's copy of the dataset (file or GAIA folder)."""
    out_dir: Path
    """Logs, corpus, checkpoints (resumable)."""
    modes: tuple[MemoryMode, ...] = MODES
    """Memory modes compared."""
    iterations: int = 3
    """Passes over the task set (the continual-learning curve)."""
    limit: int | None = None
    """First N tasks only."""
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    """Planning cycles and steps."""
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    """Planner prompt and retries."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Executor limits."""
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    """Case memory (its mode is set per run from `modes`)."""


def bench_tools_args(cfg: BenchConfig) -> dict[str, Any]:
    """Keyword arguments of `ToolClient.stdio` for this dataset (writes the HotpotQA corpus)."""
    name = cfg.dataset.lower()
    if name in ("hotpotqa", "hotpotqa-closed"):
        corpus = cfg.out_dir / "corpus.jsonl"
        if not corpus.exists():
            cfg.out_dir.mkdir(parents=True, exist_ok=True)
            n = write_hotpot_corpus(cfg.path, corpus)
            log.info("HotpotQA closed corpus: %d paragraphs -> %s", n, corpus)
        return {"corpus": corpus}
    if name == "gaia":
        return {"files_root": cfg.path if cfg.path.is_dir() else cfg.path.parent}
    return {}


def dataset_tools(dataset: str) -> tuple[str, ...] | None:
    """Tools worth offering for a dataset (closed-corpus HotpotQA: the collection only)."""
    if dataset.lower() in ("hotpotqa", "hotpotqa-closed"):
        return ("search", "read_document")
    return None


def _read_log(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: redo that task
                    continue
                done[str(rec["task_id"])] = rec
    return done


def summarize_mode(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (EM, F1) and effort figures of one iteration."""
    n = len(records)
    if n == 0:
        return {"n": 0}

    def mean(key: Callable[[dict[str, Any]], float]) -> float:
        return round(sum(key(r) for r in records) / n, 4)

    return {
        "n": n,
        "em": mean(lambda r: r["em"]),
        "f1": mean(lambda r: r["f1"]),
        "mean_tool_calls": mean(lambda r: sum(s["tool_calls"] for s in r["steps"])),
        "mean_chosen_cases": mean(lambda r: len(r["chosen_ids"])),
        "plan_fallbacks": int(sum(r["plan_fallbacks"] for r in records)),
        "mean_duration_s": mean(lambda r: r["duration_s"]),
    }


def _run_mode(
    cfg: BenchConfig,
    mode: MemoryMode,
    tasks: Sequence[Task],
    encoder: TextEncoder,
    planner_llm: ChatClient,
    executor_llm: ChatClient,
    tools: ToolRunner,
    on_task: Callable[[str, int, dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    import dataclasses

    folder = cfg.out_dir / mode
    folder.mkdir(parents=True, exist_ok=True)
    memory = AgentMemory(encoder, dataclasses.replace(cfg.memory, mode=mode))
    runner = AgentRunner(
        Planner(planner_llm, memory, cfg.planner),
        Executor(executor_llm, tools, cfg.executor),
        memory,
        dataclasses.replace(cfg.runner, scorer="gaia") if cfg.dataset == "gaia" else cfg.runner,
    )
    ckpt = folder / "learner.pt"
    logs = [_read_log(folder / f"iter{i}.jsonl") for i in range(1, cfg.iterations + 1)]
    if any(logs) and ckpt.exists() and mode == "soft-q":
        memory.learner.load_state_dict(type(memory.learner).from_checkpoint(ckpt).state_dict())
    out = []
    for it, done in enumerate(logs, 1):
        records = []
        with (folder / f"iter{it}.jsonl").open("a", encoding="utf-8") as fh:
            for task in tasks:
                if task.task_id in done:
                    rec = done[task.task_id]
                    if cfg.runner.learn and rec.get("payload"):
                        memory.write(memory.embed(task.question), rec["payload"])
                else:
                    rec = runner.run_task(task).to_json()
                    fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                    fh.flush()
                    if mode == "soft-q":
                        memory.learner.save(ckpt)
                records.append(rec)
                if on_task is not None:
                    on_task(mode, it, rec)
        out.append({"iteration": it} | summarize_mode(records))
    return out


def run_fingerprint(
    cfg: BenchConfig, planner_model: str, executor_model: str, encoder: str
) -> dict[str, Any]:
    """What makes two runs comparable: everything but the output folder, the modes (each has
    its own subfolder) and the number of iterations (more passes extend a run)."""
    import dataclasses

    settings = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if f.name not in ("out_dir", "modes", "iterations")
    }

    def jsonable(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        return str(o)

    plain = json.loads(json.dumps(settings, default=jsonable))
    return {
        **plain,
        "planner_model": planner_model,
        "executor_model": executor_model,
        "encoder": encoder,
    }


def check_fingerprint(out_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Write `run.json` on a fresh folder; raise `RunMismatchError` naming what differs when
    the folder holds another configuration."""
    path = out_dir / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {fingerprint.get(k)!r}" for k in diff[:4])
            raise RunMismatchError(
                f"{out_dir} holds a run with another configuration ({shown}); "
                "pass another --out to start a new run, or delete the folder"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True))


def run_bench(
    cfg: BenchConfig,
    planner_llm: ChatClient,
    executor_llm: ChatClient,
    tools: ToolRunner,
    encoder: TextEncoder,
    on_task: Callable[[str, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every mode over `iterations` passes; one JSON-able result with EM/F1 per iteration."""
    t0 = time.perf_counter()
    check_fingerprint(
        cfg.out_dir,
        run_fingerprint(cfg, planner_llm.model_id, executor_llm.model_id, encoder.name),
    )
    tasks = load_tasks(cfg.dataset, cfg.path, cfg.limit)
    result: dict[str, Any] = {
        "dataset": cfg.dataset,
        "path": str(cfg.path),
        "n_tasks": len(tasks),
        "iterations": cfg.iterations,
        "planner_model": planner_llm.model_id,
        "executor_model": executor_llm.model_id,
        "encoder": encoder.name,
        "out_dir": str(cfg.out_dir),
        "modes": {},
    }
    for mode in cfg.modes:
        result["modes"][mode] = _run_mode(
            cfg, mode, tasks, encoder, planner_llm, executor_llm, tools, on_task
        )
    result["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return result
