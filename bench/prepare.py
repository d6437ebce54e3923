"""`memento bench prepare`: rows/second and peak memory of the Tianchi `prepare`, per engine.

For each size, official-layout Tianchi log parts (`\\u0001`, three parts, ~1% exact duplicates,
~0.1% bad rows of several kinds, a product file) are generated in chunks (never whole in
memory) and cached under `<cache>/memento/bench-prepare/rows_<N>/`. Then each measurement runs
in its own fresh Python process, so each process's peak RSS (`ru_maxrss`) belongs to it alone:

- `scan_baseline`: a bare polars lazy scan of the same log parts streamed to parquet (raw
  strings, no parsing or validation): the floor any adapter pays for reading the bytes;
- `local`: the full `prepare_tianchi` with `engine="local"` (parse, validate, dangling check,
  de-duplicate, sort, products, report);
- `ray`: a local Ray cluster is started first (timed apart, `ray_start_s`), then the same
  prepare with `engine="ray"`; every Ray task reports its worker process's peak RSS, and a
  sampler thread records the peak of the summed RSS of the driver and all its descendant
  processes (GCS, raylet, workers).

`pass1_s` and `pass2_s` are the parts of `seconds` spent in pass 1 (parse + validate ranges)
and pass 2 (per-bucket de-duplicate + sort + append); Ray runs both as tasks, its driver only
merges counts and encodes the final parquet. `local_over_scan_rows_per_s` is the local
engine's speed as a fraction of the bare scan's. With both engines the two reports must agree
(all fields but `elapsed_s` and `engine`): `same_report`.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from data.paths import REPO_ROOT, cache_dir
from data.schema import ACTIONS

__all__ = ["ENGINES", "bench_prepare", "generate_log", "measure"]

ENGINES = ("local", "ray")
"""Prepare engines the benchmark can run."""
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


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _scan(src: Path, out: Path) -> dict[str, object]:
    """The bare polars scan of the log parts to parquet (raw strings)."""
    logs = sorted(src.glob("*rec_tmall_log*"))
    schema = {c: pl.String() for c in ("item", "user", "action", "vtime")}
    lf = pl.scan_csv(logs, has_header=False, separator=SEP, quote_char=None, schema=schema)
    t0 = time.perf_counter()
    lf.sink_parquet(out / "raw.parquet")
    secs = time.perf_counter() - t0
    rows = int(pl.scan_parquet(out / "raw.parquet").select(pl.len()).collect().item())
    return {
        "engine": "scan_baseline",
        "seconds": round(secs, 2),
        "rows": rows,
        "rows_per_s": round(rows / secs),
        "driver_peak_rss_mb": _peak_rss_mb(),
    }


def measure(engine: str, src: Path, out: Path, workers: int | None) -> dict[str, object]:
    """Run one scan or prepare in this process; seconds, rows/s, peak RSS (a fresh process)."""
    out.mkdir(parents=True, exist_ok=True)
    if engine == "scan_baseline":
        return _scan(src, out)
    from data.tianchi import LocalEngine, PrepareConfig, PrepareEngine, prepare_tianchi

    result: dict[str, object] = {"engine": engine}
    sampler: _RssSampler | None = None
    inner: PrepareEngine = LocalEngine()
    ray_engine = None
    if engine == "ray":
        import ray

        from data.tianchi_ray import RayEngine, ensure_ray

        t0 = time.perf_counter()
        ensure_ray(workers)
        result["ray_start_s"] = round(time.perf_counter() - t0, 2)
        inner = ray_engine = RayEngine(workers=workers)
        sampler = _RssSampler()
    cfg = PrepareConfig(engine="ray" if engine == "ray" else "local", workers=workers)
    timed = _Timed(inner)
    t0 = time.perf_counter()
    rep = prepare_tianchi(src, out, cfg, timed)
    secs = time.perf_counter() - t0
    result.update(
        seconds=round(secs, 2),
        pass1_s=round(timed.pass1_s, 2),
        pass2_s=round(timed.pass2_s, 2),
        rows=rep.rows_read,
        rows_per_s=round(rep.rows_read / secs),
        driver_peak_rss_mb=_peak_rss_mb(),
    )
    if ray_engine is not None and sampler is not None:
        result["ray_workers"] = len(ray_engine.peak_rss)
        result["worker_peak_rss_mb"] = sorted(
            round(v / _MB, 1) for v in ray_engine.peak_rss.values()
        )
        result["all_processes_peak_rss_sum_mb"] = round(sampler.stop() / _MB, 1)
        ray.shutdown()
    report = rep.to_dict()
    report.pop("elapsed_s"), report.pop("engine")
    result["report"] = report
    return result


class _Timed:
    """An engine whose two passes are timed (`pass1_s`, `pass2_s`)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.pass1_s, self.pass2_s = inner, 0.0, 0.0

    def split(self, *args: Any) -> Any:
        """The inner engine's pass 1, timed."""
        t = time.perf_counter()
        res = self.inner.split(*args)
        self.pass1_s = time.perf_counter() - t
        return res

    def write(self, *args: Any) -> Any:
        """The inner engine's pass 2, timed."""
        t = time.perf_counter()
        res = self.inner.write(*args)
        self.pass2_s = time.perf_counter() - t
        return res

    def session(self) -> Any:
        """The inner engine's session."""
        return self.inner.session()


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
    """`measure` in a fresh Python process (its own `ru_maxrss`)."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from bench.prepare import measure; w = int(sys.argv[4]) or None; "
        "print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), w)))"
    )
    args = [sys.executable, "-c", code, engine, str(src), str(out), str(workers or 0)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed: {proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _ratio(num: object, den: object) -> float:
    return round(float(num) / float(den), 2)  # type: ignore[arg-type]


def bench_prepare(
    sizes: Sequence[int],
    engines: Sequence[str] = ("local",),
    workers: int | None = None,
    work_dir: Path | None = None,
    err: Console | None = None,
    data_dir: Path | None = None,
) -> list[dict[str, object]]:
    """Bare scan, then each engine in `engines` at each size (log rows); one dict per size.

    `workers`: Ray tasks at once (default: all CPUs). `work_dir`: scratch for the outputs
    (default: a temporary folder; removed after either way). `data_dir`: generated-log cache
    (default `<cache>/memento/bench-prepare`). `err`: console for status spinners (None: quiet).
    """
    unknown = set(engines) - set(ENGINES)
    assert not unknown, f"unknown engines {sorted(unknown)}; supported: {ENGINES}"
    con = err or Console(stderr=True, quiet=True)
    data_dir = data_dir or cache_dir() / "memento" / "bench-prepare"
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        with con.status(f"generating {n:,} log rows (cached)"):
            src = generate_log(n, data_dir / f"rows_{n}")
        run: dict[str, object] = {
            "rows": n,
            "log_mb": round(sum(p.stat().st_size for p in src.glob("*rec_tmall_log*")) / _MB, 1),
            "generate_s": round(time.perf_counter() - t0, 2),
            "load_avg_1m_start": round(os.getloadavg()[0], 2),
        }
        tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=work_dir))
        try:
            for engine in ("scan_baseline", *engines):
                with con.status(f"{engine} on {n:,} rows"):
                    run[engine] = _run(engine, src, tmp / engine, workers)
                shutil.rmtree(tmp / engine, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        run["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        reports = [m.pop("report") for e in engines if isinstance(m := run[e], dict)]
        scan = run["scan_baseline"]
        assert isinstance(scan, dict), "measurements are dicts"
        for e in engines:
            m = run[e]
            assert isinstance(m, dict), "measurements are dicts"
            run[f"{e}_over_scan_time"] = _ratio(m["seconds"], scan["seconds"])
            run[f"{e}_over_scan_rows_per_s"] = _ratio(m["rows_per_s"], scan["rows_per_s"])
        if len(engines) == 2:
            loc, ray_ = run["local"], run["ray"]
            assert isinstance(loc, dict) and isinstance(ray_, dict), "measurements are dicts"
            run["ray_over_local_rows_per_s"] = _ratio(ray_["rows_per_s"], loc["rows_per_s"])
            run["same_report"] = reports[0] == reports[1]
        results.append(run)
    return results
