"""What `prepare` did: counts that prove no row was lost silently."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class PrepareReport:
    """Summary of one `prepare` run; written to report.json and printed by `--json`.

    Log counts: rows_read = rows_kept + duplicates_dropped + rejected log rows.
    `actions`, `users`, `items`, `time_min`, `time_max` count the valid log rows *before*
    de-duplication (the figures quoted for the raw sample); `actions_kept` counts the rows
    actually written to interactions.parquet.
    """

    source: str
    """Adapter name, e.g. `tianchi`."""
    rows_read: int = 0
    """Log rows read (data rows, header excluded)."""
    rows_kept: int = 0
    """Rows written to interactions.parquet."""
    duplicates_dropped: int = 0
    """Exact duplicate log rows dropped (0 with keep_duplicates)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """reason -> rejected rows, over all tables (see rejects.parquet for the rows)."""
    users: int = 0
    """Distinct users among valid log rows."""
    items: int = 0
    """Distinct items among valid log rows."""
    actions: dict[str, int] = field(default_factory=dict)
    """action -> valid log rows before de-duplication."""
    actions_kept: dict[str, int] = field(default_factory=dict)
    """action -> rows written (after de-duplication)."""
    time_min: str | None = None
    """Earliest valid timestamp, ISO format."""
    time_max: str | None = None
    """Latest valid timestamp, ISO format."""
    products_read: int = 0
    """Product rows read (0 when there is no product file)."""
    products_kept: int = 0
    """Product rows written to items.parquet."""
    reviews_read: int = 0
    """Review rows read."""
    reviews_kept: int = 0
    """Review rows written to reviews.parquet."""
    items_with_product: int | None = None
    """Distinct valid log items that join a product row (None without a product file)."""
    reject_fraction: float = 0.0
    """Rejected rows / all rows read (log + products + reviews)."""
    log_files: list[str] = field(default_factory=list)
    """Log part files read, in order."""
    engine: str = "local"
    """Pass-1 engine that produced it: `local` or `ray` (same output either way)."""
    elapsed_s: float = 0.0
    """Wall-clock seconds of the whole prepare."""

    @property
    def total_rejected(self) -> int:
        """Rejected rows over all tables and reasons."""
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        return asdict(self)

    def to_json(self) -> str:
        """One JSON object on one line."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)

    def write(self, path: Path) -> None:
        """Write the report as pretty JSON."""
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> PrepareReport:
        """Read a report.json back."""
        return cls(**json.loads(Path(path).read_text()))
