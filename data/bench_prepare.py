"""`memento data bench-prepare`: the local and the Ray prepare engines side by side.

For each size, official-layout Tianchi log parts (`\\u0001`, three parts, ~1% exact duplicates,
~0.1% bad rows, a product file) are generated in chunks (never whole in memory) and cached
under `<cache>/memento/bench-prepare/rows_<N>/`. Then each engine runs in its own fresh Python
process, so each process's peak RSS (`ru_maxrss`) belongs to one measurement:

- `local`: `prepare_tianchi` with `engine="local"`;
- `ray`: a local Ray cluster is started first (timed apart, `ray_start_s`), then the same
  prepare with `engine="ray"`; every Ray task reports its worker process's peak RSS, and
  a sampler thread records the peak of the summed RSS of the driver and all its descendant
  processes (GCS, raylet, workers).

`pass1_s` is the part of `seconds` spent in pass 1 (the part Ray parallelises; pass 2, the
per-bucket de-duplicate + sort + append, runs in the driver either way).

The two reports must agree (all fields but `elapsed_s` and `engine`): `same_report`.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from data.paths import REPO_ROOT, cache_dir
from data.schema import ACTIONS

__all__ = ["bench_prepare", "generate_log", "measure"]

SEP = "\x01"
PARTS = 3
CHUNK_ROWS = 1_000_000
DAYS = 120
_MB = 1 << 20


def generate_log(rows: int, out_dir: Path, seed: int = 0) -> Path:
    """Write `rows` official-layout log lines (3 parts) and a product file; reuse a cache hit."""
    done = out_dir / "_complete"
    if done.exists():
        return out_dir
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    items = max(1_000, min(50_000, rows // 200))
    ids = np.arange(1, items + 1)
    pl.DataFrame(
        {"i": ids, "t": "title", "u": "http://x", "c": "1-1", "b": "null", "s": "s1"}
    ).write_csv(
        out_dir / "tianchi_2014001_rec_tmall_product.txt",
        separator=SEP,
        include_header=False,
        quote_style="never",
    )
    rng = np.random.default_rng(seed)
    users = max(1_000, rows // 50)
    start = np.datetime64("2014-07-01T00:00:00", "s")
    per_part = -(-rows // PARTS)
    for part in range(PARTS):
        name = f"tianchi_2014002_rec_tmall_log_part{chr(ord('a') + part)}.txt"
        with (out_dir / name).open("wb") as fh:
            left = min(per_part, rows - part * per_part)
            while left > 0:
                n = min(CHUNK_ROWS, left)
                _chunk(rng, n, items, users, start).write_csv(
                    fh, separator=SEP, include_header=False, quote_style="never"
                )
                left -= n
    done.touch()
    return out_dir


def _chunk(
    rng: np.random.Generator, n: int, items: int, users: int, start: np.datetime64
) -> pl.DataFrame:
    """`n` log lines: ~1% duplicates of the previous line, ~0.1% bad rows of several kinds."""
    item = rng.integers(1, items + 1, n)
    item[rng.random(n) < 0.0002] = items + 10  # dangling item
    secs = rng.integers(0, DAYS * 86400, n)
    dup = np.flatnonzero(rng.random(n) < 0.01)
    dup = dup[dup > 0]
    user = rng.integers(1, users + 1, n)
    action = np.asarray(ACTIONS)[rng.integers(0, len(ACTIONS), n)].astype(object)
    for arr in (item, secs, user, action):
        arr[dup] = arr[dup - 1]
    action[rng.random(n) < 0.0003] = "buy"  # unknown action
    ts = (start + secs.astype("timedelta64[s]")).astype(str)
    ts = np.char.replace(ts, "T", " ").astype(object)
    ts[rng.random(n) < 0.0003] = "2014-13-45 99:00:00"  # bad timestamp
    ids = np.char.add("u", user.astype(str)).astype(object)
    ids[rng.random(n) < 0.0002] = "ux"  # missing id
    return pl.DataFrame(
        {"i": np.char.add("i", item.astype(str)), "u": ids, "a": action, "t": ts},
        schema={"i": pl.String, "u": pl.String, "a": pl.String, "t": pl.String},
    )


def measure(engine: str, src: Path, out: Path, workers: int | None) -> dict[str, object]:
    """Run one prepare in this process; seconds, rows/s, peak RSS (call in a fresh process)."""
    from data.tianchi import PrepareConfig, prepare_tianchi
    from data.tianchi_log import LogSplit, LogSplitter, split_log

    result: dict[str, object] = {"engine": engine}
    sampler: _RssSampler | None = None
    splitter = None
    if engine == "ray":
        import ray

        from data.tianchi_ray import RaySplitter, ensure_ray

        t0 = time.perf_counter()
        ensure_ray(workers)
        result["ray_start_s"] = round(time.perf_counter() - t0, 2)
        splitter = RaySplitter(workers=workers)
        sampler = _RssSampler()
    cfg = PrepareConfig(engine="ray" if engine == "ray" else "local", workers=workers)
    inner: LogSplitter = splitter if splitter is not None else split_log
    pass1_s = 0.0

    def timed(*args: Any, **kwargs: Any) -> LogSplit:
        nonlocal pass1_s
        t = time.perf_counter()
        res = inner(*args, **kwargs)
        pass1_s = time.perf_counter() - t
        return res

    t0 = time.perf_counter()
    rep = prepare_tianchi(src, out, cfg, timed)
    secs = time.perf_counter() - t0
    result.update(
        seconds=round(secs, 2),
        pass1_s=round(pass1_s, 2),
        rows=rep.rows_read,
        rows_per_s=round(rep.rows_read / secs),
        driver_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    if splitter is not None and sampler is not None:
        result["ray_workers"] = len(splitter.peak_rss)
        result["worker_peak_rss_mb"] = sorted(round(v / _MB, 1) for v in splitter.peak_rss.values())
        result["all_processes_peak_rss_sum_mb"] = round(sampler.stop() / _MB, 1)
        ray.shutdown()
    report = rep.to_dict()
    report.pop("elapsed_s"), report.pop("engine")
    result["report"] = report
    return result


class _RssSampler:
    """Peak of the summed RSS of this process and its descendants, sampled every 0.2 s."""

    def __init__(self) -> None:
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self._peak = max(self._peak, total)

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self._peak


def _run(engine: str, src: Path, out: Path, workers: int | None) -> dict[str, object]:
    code = (
        "import json, sys; from pathlib import Path; from data.bench_prepare import measure; "
        "w = int(sys.argv[4]) or None; "
        "print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), w)))"
    )
    args = [sys.executable, "-c", code, engine, str(src), str(out), str(workers or 0)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} prepare failed: {proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_prepare(
    sizes: list[int], workers: int | None = None, keep_outputs: bool = False
) -> list[dict[str, object]]:
    """Local vs Ray prepare at each size (rows of log); one dict per size."""
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        src = generate_log(n, cache_dir() / "memento" / "bench-prepare" / f"rows_{n}")
        gen_s = round(time.perf_counter() - t0, 2)
        log_mb = sum(p.stat().st_size for p in src.glob("*rec_tmall_log*")) / _MB
        tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=src.parent))
        try:
            local = _run("local", src, tmp / "local", workers)
            ray_ = _run("ray", src, tmp / "ray", workers)
        finally:
            if not keep_outputs:
                shutil.rmtree(tmp, ignore_errors=True)
        same = local.pop("report") == ray_.pop("report")
        results.append(
            {
                "rows": n,
                "log_mb": round(log_mb, 1),
                "generate_s": gen_s,
                "local": local,
                "ray": ray_,
                "ray_over_local_rows_per_s": round(
                    float(ray_["rows_per_s"]) / float(local["rows_per_s"]),  # type: ignore[arg-type]
                    2,
                ),
                "same_report": same,
            }
        )
    return results
