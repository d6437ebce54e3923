"""Benchmark runner: iterations over a task set, per memory mode, giving the
continual-learning curve (accuracy per iteration with and without case memory).

Layout under `out_dir`: `corpus.jsonl` (HotpotQA closed corpus: every paragraph of every
question pooled), and per mode `<mode>/iter<i>.jsonl` (one full `TaskRecord` per line),
`<mode>/learner.pt`, `<mode>/memory/` (the saved bank and learner after the last pass, see
`AgentMemory.save`) and, with a held-out split, `<mode>/heldout.jsonl`. A rerun skips tasks
already logged: their cases are rewritten into a fresh bank in the original order and the
learner checkpoint is reloaded (the replay buffer is not).

Held-out protocol (the paper's out-of-distribution test): memory is built by the passes over
the *train* tasks only; then every *test* task is attempted once per sample with learning off,
so each sees the same memory and never its own earlier answer. Tasks carrying
`metadata["split"]` keep it; others are split by a seeded hash (`heldout` = test share).
Every pass attempts each task `samples` times (the first attempt learns, the others only read
memory), giving pass@k (unbiased estimator over the n samples). With `concurrency` > 1, tasks
are attempted in chunks against one memory snapshot, then learned from in task order.
`run.json` holds the run's fingerprint (dataset, models, encoder and every setting but the modes
and the number of iterations): a rerun with another fingerprint is refused
(`RunMismatchError`), so results of one model are never reported under another's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import RunMismatchError
from agent.executor import Executor, ExecutorConfig, ToolRunner
from agent.judge import LLMJudge
from agent.memory import AgentMemory, MemoryConfig, MemoryMode
from agent.planner import Planner, PlannerConfig
from agent.runner import AgentRunner, Attempt, RunnerConfig
from agent.tasks import Task, load_tasks, write_hotpot_corpus
from bench.research.bench_summary import MODES, paired_modes, pass_at_k, summarize_mode
from recsys.llm.chat import ChatClient
from recsys.memory.text_encoder import TextEncoder

__all__ = [
    "BenchConfig",
    "bench_tools_args",
    "check_fingerprint",
    "dataset_tools",
    "pass_at_k",
    "run_bench",
    "run_fingerprint",
    "split_tasks",
    "summarize_mode",
]

log = logging.getLogger(__name__)


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
    samples: int = 1
    """Attempts per task and pass (pass@k for k <= samples); only the first one learns."""
    heldout: float | None = None
    """Test share of a held-out split (None: no split, every task is trained and reported)."""
    split_seed: int = 0
    """Seed of the hash split (tasks with `metadata['split']` keep theirs)."""
    concurrency: int = 1
    """Tasks attempted at once against one memory snapshot (an endpoint serves them)."""
    memory_from: Path | None = None
    """Start every mode from this saved memory folder (`AgentMemory.save`)."""


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
    if name == "ledger-family":
        return {"corpus": (cfg.path if cfg.path.is_dir() else cfg.path.parent) / "corpus.jsonl"}
    return {}


def dataset_tools(dataset: str) -> tuple[str, ...] | None:
    """Tools worth offering for a dataset (closed-corpus HotpotQA: the collection only)."""
    if dataset.lower() in ("hotpotqa", "hotpotqa-closed", "ledger-family"):
        return ("search", "read_document")
    return None


def split_tasks(
    tasks: Sequence[Task], heldout: float | None, seed: int = 0
) -> tuple[list[Task], list[Task]]:
    """(train, test): `metadata['split']` when every task has one, else a seeded hash split
    with test share `heldout` (no split: every task trains, none is held out)."""
    if heldout is None:
        return list(tasks), []
    if tasks and all(t.metadata.get("split") in ("train", "test") for t in tasks):
        return (
            [t for t in tasks if t.metadata["split"] == "train"],
            [t for t in tasks if t.metadata["split"] == "test"],
        )
    if not 0.0 < heldout < 1.0:
        raise ValueError(f"heldout must be in (0, 1), got {heldout}")

    def u(t: Task) -> float:
        h = hashlib.sha1(f"{seed}:{t.task_id}".encode()).hexdigest()[:12]
        return int(h, 16) / 16**12

    return [t for t in tasks if u(t) >= heldout], [t for t in tasks if u(t) < heldout]


def _read_log(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: redo that task
                    continue
                done[(str(rec["task_id"]), int(rec.get("sample", 0)))] = rec
    return done


class _Pass:
    """One pass over tasks for one mode: attempts (concurrent in chunks), learning in order,
    one JSONL line per attempt, resume from the log."""

    def __init__(
        self,
        runner: AgentRunner,
        memory: AgentMemory,
        cfg: BenchConfig,
        learn: bool,
        on_task: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.runner, self.memory, self.cfg = runner, memory, cfg
        self.learn_on = learn and cfg.runner.learn
        self.on_task = on_task

    def run(self, tasks: Sequence[Task], log: Path, after_learn: Callable[[], None]) -> list[Any]:
        done = _read_log(log)
        records: list[dict[str, Any]] = []
        jobs = [(t, k) for t in tasks for k in range(self.cfg.samples)]
        width = max(1, self.cfg.concurrency)
        with log.open("a", encoding="utf-8") as fh, ThreadPoolExecutor(width) as pool:
            for start in range(0, len(jobs), width):
                chunk = jobs[start : start + width]
                todo = [(t, k) for t, k in chunk if (t.task_id, k) not in done]
                solved = pool.map(lambda job: self.runner.attempt(job[0]), todo)
                attempts = {(t.task_id, k): a for (t, k), a in zip(todo, solved, strict=True)}
                for t, k in chunk:
                    if (t.task_id, k) in done:
                        rec = done[(t.task_id, k)]
                        if k == 0 and self.learn_on and rec.get("payload"):
                            self.memory.write(self.memory.embed(t.question), rec["payload"])
                    else:
                        rec = self._record(attempts[(t.task_id, k)], k)
                        fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                        fh.flush()
                        if k == 0 and self.learn_on:
                            after_learn()
                    records.append(rec)
                    if self.on_task is not None:
                        self.on_task(rec)
        return records

    def _record(self, att: Attempt, sample: int) -> dict[str, Any]:
        learn = sample == 0 and self.learn_on
        saved = self.runner.cfg
        self.runner.cfg = dataclasses.replace(saved, learn=learn)
        try:
            return self.runner.learn(att, sample).to_json()
        finally:
            self.runner.cfg = saved


def _scorer(dataset: str, judged: bool) -> Any:
    name = dataset.lower()
    if name in ("simpleqa", "deepresearcher") and judged:
        return name
    if name == "gaia":
        return "gaia"
    return "hotpotqa"


def _run_mode(
    cfg: BenchConfig,
    mode: MemoryMode,
    train: Sequence[Task],
    test: Sequence[Task],
    encoder: TextEncoder,
    planner_llm: ChatClient,
    executor_llm: ChatClient,
    tools: ToolRunner,
    llm_judge: LLMJudge | None,
    on_task: Callable[[str, int, dict[str, Any]], None] | None,
) -> dict[str, Any]:
    folder = cfg.out_dir / mode
    folder.mkdir(parents=True, exist_ok=True)
    memory = AgentMemory(encoder, dataclasses.replace(cfg.memory, mode=mode))
    if cfg.memory_from is not None:
        memory.load(cfg.memory_from)
    runner = AgentRunner(
        Planner(planner_llm, memory, cfg.planner),
        Executor(executor_llm, tools, cfg.executor),
        memory,
        dataclasses.replace(
            cfg.runner,
            scorer=_scorer(cfg.dataset, llm_judge is not None),
            files_root=bench_tools_args(cfg).get("files_root", cfg.runner.files_root),
        ),
        llm_judge=llm_judge,
    )
    ckpt = folder / "learner.pt"
    logs = [folder / f"iter{i}.jsonl" for i in range(1, cfg.iterations + 1)]
    if any(p.exists() for p in logs) and ckpt.exists() and mode == "soft-q":
        memory.learner.load_state_dict(type(memory.learner).from_checkpoint(ckpt).state_dict())

    def save_learner() -> None:
        if mode == "soft-q":
            memory.learner.save(ckpt)

    out: dict[str, Any] = {"iterations": []}
    for it, log in enumerate(logs, 1):

        def note(rec: dict[str, Any], it: int = it) -> None:
            if on_task is not None:
                on_task(mode, it, rec)

        records = _Pass(runner, memory, cfg, True, note).run(train, log, save_learner)
        out["iterations"].append({"iteration": it} | summarize_mode(records))
    memory.save(folder / "memory")
    if test:

        def note_test(rec: dict[str, Any]) -> None:
            if on_task is not None:
                on_task(mode, 0, rec)

        records = _Pass(runner, memory, cfg, False, note_test).run(
            test, folder / "heldout.jsonl", lambda: None
        )
        out["heldout"] = summarize_mode(records)
        out["_heldout_records"] = records
    return out


def run_fingerprint(
    cfg: BenchConfig, planner_model: str, executor_model: str, encoder: str
) -> dict[str, Any]:
    """What makes two runs comparable: everything but the output folder, the modes (each has
    its own subfolder) and the number of iterations (more passes extend a run)."""
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
    llm_judge: LLMJudge | None = None,
) -> dict[str, Any]:
    """Run every mode over `iterations` passes (and the held-out pass); one JSON-able result
    with accuracy per pass, pass@k, judge labels and paired mode differences."""
    t0 = time.perf_counter()
    fingerprint = run_fingerprint(cfg, planner_llm.model_id, executor_llm.model_id, encoder.name)
    fingerprint["judge"] = getattr(getattr(llm_judge, "client", None), "model_id", None)
    check_fingerprint(cfg.out_dir, fingerprint)
    tasks = load_tasks(cfg.dataset, cfg.path, cfg.limit)
    train, test = split_tasks(tasks, cfg.heldout, cfg.split_seed)
    result: dict[str, Any] = {
        "dataset": cfg.dataset,
        "path": str(cfg.path),
        "n_tasks": len(tasks),
        "n_train": len(train),
        "n_test": len(test),
        "iterations": cfg.iterations,
        "samples": cfg.samples,
        "planner_model": planner_llm.model_id,
        "executor_model": executor_llm.model_id,
        "encoder": encoder.name,
        "judge": fingerprint["judge"],
        "out_dir": str(cfg.out_dir),
        "modes": {},
    }
    heldout: dict[str, Sequence[dict[str, Any]]] = {}
    for mode in cfg.modes:
        res = _run_mode(
            cfg, mode, train, test, encoder, planner_llm, executor_llm, tools, llm_judge, on_task
        )
        if "_heldout_records" in res:
            heldout[mode] = res.pop("_heldout_records")
        result["modes"][mode] = res
    if len(heldout) > 1:
        result["heldout_paired"] = paired_modes(heldout)
    result["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return result
