"""What a person sees while a command runs: libraries write to a log file, not the console.

`QuietLibraries` is the console filter of every `memento` command: the project's own records
pass at the handler's level, a library's only from WARNING up (faiss announces its loader at
INFO). `log_to_file(path)` goes further for a long job (`memento train`): while it is active
every log record (INFO and up), every Python warning and everything written to `sys.stderr`
(transformers' and mlflow's own handlers, huggingface progress bars, alembic) lands in `path`;
the console keeps the project's warnings and the libraries' errors. Rich progress bars and
tables draw on stdout and are untouched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOG_FORMAT", "PROJECT_PACKAGES", "QuietLibraries", "log_to_file"]

PROJECT_PACKAGES = frozenset(
    {"recsys", "agent", "training", "serving", "data", "tracking", "bench", "memento"}
)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class QuietLibraries(logging.Filter):
    """Pass the project's records; pass a library's only at `library_level` or above."""

    def __init__(self, library_level: int = logging.WARNING) -> None:
        super().__init__()
        self.library_level = library_level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.partition(".")[0] in PROJECT_PACKAGES
        return ours or record.levelno >= self.library_level


class _StderrSwitch(io.TextIOBase):
    """`sys.stderr` stand-in: writes to the log while active, to the real stderr after.

    Libraries keep the stream they found (transformers binds its handler once), so what they
    write after the job goes back to the terminal instead of to a closed file.
    """

    def __init__(self, log: io.TextIOBase, fallback: io.TextIOBase) -> None:
        self.log: io.TextIOBase | None = log
        self.fallback = fallback

    @property
    def _target(self) -> io.TextIOBase:
        return self.log if self.log is not None else self.fallback

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, text: str) -> int:
        self._target.write(text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self.log is None and self.fallback.isatty()

    def fileno(self) -> int:
        return self._target.fileno()


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[Path]:
    """Route logs, warnings and stderr to `path` (overwritten) for the duration; yields it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    consoles = list(root.handlers)
    saved_levels = [h.level for h in consoles]
    saved_root_level = root.level
    quiet = QuietLibraries(logging.ERROR)
    real_stderr = sys.stderr
    extra: logging.Handler | None = None
    if not consoles:  # called outside `memento` (no console handler yet): add one
        extra = logging.StreamHandler(real_stderr)
        extra.setFormatter(logging.Formatter(LOG_FORMAT))
        consoles = [extra]
        saved_levels = [logging.NOTSET]
        root.addHandler(extra)
    with path.open("w", encoding="utf-8") as stream:
        to_file = logging.StreamHandler(stream)
        to_file.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(to_file)
        root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
        for h in consoles:
            h.setLevel(max(h.level, logging.WARNING))
            h.addFilter(quiet)
        show_warning = warnings.showwarning
        logging.captureWarnings(True)
        switch = _StderrSwitch(stream, real_stderr)  # type: ignore[arg-type]
        try:
            with contextlib.redirect_stderr(switch):
                yield path
        finally:
            switch.log = None
            logging.captureWarnings(False)
            warnings.showwarning = show_warning
            for h, level in zip(consoles, saved_levels, strict=True):
                h.setLevel(level)
                h.removeFilter(quiet)
            root.removeHandler(to_file)
            if extra is not None:
                root.removeHandler(extra)
            root.setLevel(saved_root_level)
