"""The pinned side environments of the peers whose pins clash with the project's .venv (RecBole
peers, OBP estimators): built on demand, then a job script runs in them as a subprocess.

`ensure_venv` builds a `SideVenv` once under a file lock (concurrent callers wait instead of
building twice): `python -m venv --clear`, the pip installs in order (torch's pinned CPU build
first and alone, so pip never pulls a CUDA wheel), an import probe, then a marker file holding
the specs; later calls whose marker matches return at once. `run_job` writes the job's spec,
runs the script in the venv with the user site, `PYTHONPATH` and GPUs out of its way, and
reads its JSON output. Every failure raises the caller's error type naming the step, with the
tail of the output.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["SideVenv", "ensure_venv", "run_checked", "run_job"]

_TAIL = 4000
"""Characters of output quoted in an error."""


def run_checked(cmd: Sequence[str], what: str, error: type[Exception]) -> None:
    """Run `cmd`; raise `error` naming the step `what` with the output's tail on failure."""
    log.info("%s: %s", what, " ".join(cmd))
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. the interpreter does not exist
        raise error(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-_TAIL:]
        raise error(f"{what} failed (exit {proc.returncode}):\n{tail}")


@dataclass(frozen=True)
class SideVenv:
    """One pinned side environment: where it lives, what is installed, how it is checked."""

    label: str
    """Names the environment in step names ("create <label> venv")."""
    path: Path
    """Where the venv lives (created on first use, reused afterwards)."""
    installs: tuple[tuple[tuple[str, ...], str], ...]
    """(pip install arguments, step name) in order."""
    probe: str
    """Python code that must run in the finished venv (imports, versions)."""
    marker: str
    """Text of the ready marker: the specs, so a change of pins rebuilds the venv."""
    python: str = sys.executable
    """Interpreter that creates the venv."""

    @property
    def interpreter(self) -> Path:
        """The venv's python."""
        return self.path / "bin" / "python"

    def ready(self) -> bool:
        """Whether the venv is built with these specs."""
        marker = self.path / ".memento-ready"
        return marker.is_file() and marker.read_text() == self.marker and self.interpreter.exists()


def ensure_venv(venv: SideVenv, error: type[Exception]) -> Path:
    """Build `venv` once (module docstring); returns its python. Takes minutes the first time
    (the torch download); concurrent callers wait on a file lock instead of building twice.
    Raises `error` with the failing step's output tail."""
    if venv.ready():
        return venv.interpreter
    venv.path.parent.mkdir(parents=True, exist_ok=True)
    with (venv.path.parent / f"{venv.path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv.ready():
            return venv.interpreter
        py = str(venv.interpreter)
        run_checked(
            [venv.python, "-m", "venv", "--clear", str(venv.path)],
            f"create {venv.label} venv",
            error,
        )
        pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for args, what in venv.installs:
            run_checked([*pip, *args], what, error)
        run_checked([py, "-c", venv.probe], f"check {venv.label} venv", error)
        (venv.path / ".memento-ready").write_text(venv.marker)
    return venv.interpreter


def run_job(
    python: Path,
    script: Path,
    spec: Mapping[str, Any],
    workdir: Path,
    error: type[Exception],
    *,
    what: str,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Run `python script spec.json out.json` in `workdir` (log in `job.log`); the parsed
    `out.json`. `env` adds variables. Raises `error` (named `what`, with the log's tail) when
    the job fails, times out or writes no output."""
    spec_path, out_path, log_path = workdir / "spec.json", workdir / "out.json", workdir / "job.log"
    spec_path.write_text(json.dumps(spec, indent=1))
    out_path.unlink(missing_ok=True)
    job_env = {**os.environ, "PYTHONNOUSERSITE": "1", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    job_env.pop("PYTHONPATH", None)
    log.info("%s: %s (log %s)", what, spec_path, log_path)
    try:
        with log_path.open("w") as fh:
            proc = subprocess.run(
                [str(python), str(script), str(spec_path), str(out_path)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=job_env,
                cwd=workdir,
                timeout=timeout_s,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        tail = log_path.read_text()[-_TAIL:]
        raise error(f"{what} timed out after {timeout_s} s; log {log_path}:\n{tail}") from exc
    if proc.returncode != 0 or not out_path.is_file():
        tail = log_path.read_text()[-_TAIL:]
        raise error(f"{what} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return json.loads(out_path.read_text())
