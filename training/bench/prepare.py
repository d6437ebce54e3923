"""`memento bench prepare`: rows/second and peak memory of the Tianchi `prepare`.

For each size, synthetic Tianchi-format data is generated (official `\\u0001` format, three log
parts, ~1% exact duplicates); then, each in its own fresh Python process so peak RSS
(`ru_maxrss`) is per measurement:

- `scan_baseline`: a bare polars lazy scan of the same log parts streamed to parquet (raw
  strings, no parsing or validation): the floor any adapter pays for reading the bytes;
- `prepare`: the full `prepare_tianchi` (parse, validate, dangling check, de-duplicate, sort,
  products, reviews, report).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

_WORKER = r"""
import json, resource, sys, time
from pathlib import Path
kind, src, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
t0 = time.perf_counter()
extra = {}
if kind == "scan_baseline":
    import polars as pl
    logs = sorted(src.glob("*rec_tmall_log*"))
    schema = {c: pl.String() for c in ("item", "user", "action", "vtime")}
    lf = pl.scan_csv(logs, has_header=False, separator="\x01", quote_char=None, schema=schema)
    lf.sink_parquet(out / "raw.parquet")
    extra["rows"] = pl.scan_parquet(out / "raw.parquet").select(pl.len()).collect().item()
elif kind == "prepare":
    from data.tianchi import PrepareConfig, prepare_tianchi
    rep = prepare_tianchi(src, out, PrepareConfig())
    extra = {"rows": rep.rows_read, "rows_kept": rep.rows_kept,
             "duplicates_dropped": rep.duplicates_dropped, "rejected": rep.rejected}
elif kind == "synth":
    from data.synthetic import SynthConfig, generate_synthetic
    n = int(sys.argv[4])
    cfg = SynthConfig(users=max(1000, n // 50), items=max(1000, n // 200), events=n, seed=0)
    generate_synthetic(cfg, src)
secs = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": round(secs, 3), "peak_rss_mb": round(peak_mb, 1), **extra}))
"""


def _run(kind: str, src: Path, out: Path, *extra: str) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, kind, str(src), str(out), *extra],
        capture_output=True,
        text=True,
        cwd=repo,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed: {proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_prepare(
    sizes: list[int], work_dir: Path | None = None, err: Console | None = None
) -> list[dict[str, object]]:
    """Rows/second and peak RSS of `data prepare` vs a bare polars scan, one dict per size.

    `err`: console for status spinners and each size's figures (None: quiet).
    """
    con = err or Console(stderr=True, quiet=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=work_dir))
    results = []
    try:
        for n in sizes:
            src = tmp / f"synth_{n}"
            with con.status(f"generating {n:,} events"):
                gen = _run("synth", src, tmp / "unused", str(n))
            log_bytes = sum(p.stat().st_size for p in src.glob("*rec_tmall_log*"))
            with con.status(f"bare scan of {n:,} events"):
                scan = _run("scan_baseline", src, tmp / f"scan_{n}")
            with con.status(f"prepare of {n:,} events"):
                prep = _run("prepare", src, tmp / f"prep_{n}")
            lines = int(scan["rows"])  # type: ignore[call-overload]
            for m in (scan, prep):
                m["rows_per_s"] = round(lines / float(m["seconds"]))  # type: ignore[arg-type]
            results.append(
                {
                    "events": n,
                    "log_lines": lines,
                    "log_mb": round(log_bytes / 2**20, 1),
                    "generate": gen,
                    "scan_baseline": scan,
                    "prepare": prep,
                    "prepare_over_scan_time": round(
                        float(prep["seconds"]) / float(scan["seconds"]),
                        2,  # type: ignore[arg-type]
                    ),
                }
            )
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(tmp / f"scan_{n}", ignore_errors=True)
            shutil.rmtree(tmp / f"prep_{n}", ignore_errors=True)
            con.print(results[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
