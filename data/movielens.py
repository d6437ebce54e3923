"""MovieLens-100K from the `recbole==1.2.1` wheel, mapped to the canonical schema.

The wheel ships RecBole atomic files at `recbole/dataset_example/ml-100k/`. We download the
wheel without dependencies (`pip download --no-deps`), read the files straight from the zip
(RecBole is never installed) and write canonical parquet into a cache folder. Research-use
licence: fetched at run time, never committed.

Rating -> action mapping (a graded reward ladder, documented in data/README.md):
5 -> alipay, 4 -> cart, 3 -> collect, 1-2 -> click. Unix timestamps become naive UTC datetimes;
there is no dwell time. Items: title = movie_title (+ release year), category = genres
(`class`, space separated); brand, seller and picture are null. There are no reviews.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl

from data.errors import FetchError
from data.paths import cache_dir
from data.schema import (
    ACTION_DTYPE,
    INTERACTIONS_FILE,
    INTERACTIONS_SCHEMA,
    ITEMS_FILE,
    ITEMS_SCHEMA,
    REVIEWS_FILE,
    REVIEWS_SCHEMA,
    conform,
    empty_frame,
)

log = logging.getLogger(__name__)

RECBOLE_VERSION = "1.2.1"
ATOMIC_DIR = "recbole/dataset_example/ml-100k/"
SOURCE = "movielens-100k"
RATING_TO_ACTION = {5: "alipay", 4: "cart", 3: "collect", 2: "click", 1: "click"}
"""Rating -> canonical action."""


def download_recbole_wheel(wheel_dir: Path) -> Path:
    """The recbole wheel in `wheel_dir`, downloaded with pip (no dependencies) if absent."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(wheel_dir.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"recbole=={RECBOLE_VERSION}", "-d", str(wheel_dir)]  # fmt: skip
    log.info("downloading %s", " ".join(cmd[3:]))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(wheel_dir.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
    if proc.returncode != 0 or not found:
        raise FetchError(
            f"pip download of recbole=={RECBOLE_VERSION} failed: {proc.stderr[-2000:]}"
        )
    return found[0]


def _read_atomic(zf: zipfile.ZipFile, name: str) -> pl.DataFrame:
    """An atomic file (`field:type` header, tab-separated) with the `:type` suffixes removed."""
    data = zf.read(ATOMIC_DIR + name)
    df = pl.read_csv(
        io.BytesIO(data), separator="\t", quote_char=None, infer_schema=False, encoding="utf8-lossy"
    )
    return df.rename({c: c.split(":", 1)[0] for c in df.columns})


def movielens_from_wheel(wheel: Path, out_dir: Path) -> Path:
    """Write canonical parquet for ML-100K read from the wheel zip; return `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        inter = _read_atomic(zf, "ml-100k.inter")
        items = _read_atomic(zf, "ml-100k.item")
    rating = pl.col("rating").cast(pl.Float64).round().cast(pl.Int64)
    interactions = (
        inter.with_row_index("_pos")
        .with_columns(
            user_id=pl.col("user_id").cast(pl.Int64),
            item_id=pl.col("item_id").cast(pl.Int64),
            action=rating.replace_strict(RATING_TO_ACTION, return_dtype=pl.String).cast(
                ACTION_DTYPE
            ),
            ts=pl.from_epoch(pl.col("timestamp").cast(pl.Float64).cast(pl.Int64), "s").cast(
                pl.Datetime("us")
            ),
            source=pl.lit(SOURCE),
        )
        .sort(["ts", "_pos"])
    )
    title = pl.col("movie_title")
    if "release_year" in items.columns:
        title = pl.concat_str([title, pl.lit(" ("), pl.col("release_year"), pl.lit(")")])
    items_df = items.with_columns(
        item_id=pl.col("item_id").cast(pl.Int64),
        title=title,
        category=pl.col("class") if "class" in items.columns else pl.lit(None, pl.String),
    )
    conform(interactions, INTERACTIONS_SCHEMA).write_parquet(out_dir / INTERACTIONS_FILE)
    conform(items_df, ITEMS_SCHEMA).write_parquet(out_dir / ITEMS_FILE)
    empty_frame(REVIEWS_SCHEMA).write_parquet(out_dir / REVIEWS_FILE)
    (out_dir / "report.json").write_text(
        json.dumps(
            {
                "source": SOURCE,
                "rows_read": inter.height,
                "rows_kept": interactions.height,
                "rating_to_action": {str(k): v for k, v in RATING_TO_ACTION.items()},
                "wheel": wheel.name,
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def fetch_movielens_100k(out_dir: Path | None = None) -> Path:
    """Canonical ML-100K folder (default `<cache>/movielens-100k`), fetched once then reused."""
    root = cache_dir()
    out = Path(out_dir) if out_dir is not None else root / SOURCE
    if (out / INTERACTIONS_FILE).is_file() and (out / ITEMS_FILE).is_file():
        return out
    wheel = download_recbole_wheel(root / "wheels")
    return movielens_from_wheel(wheel, out)
