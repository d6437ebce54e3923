"""Sandboxed Python execution: no network, CPU/memory/process/time caps, throwaway work folder.

Backends, best first:
- `bwrap` (Debian bubblewrap): new user/net/pid/ipc/uts namespaces, only /usr (read-only),
  /proc, /dev, a private /tmp and the work folder (at /sandbox) are visible, so files outside
  the work folder cannot be read; the process runs as `nobody` outside the namespace.
- `unshare`: new user/net/pid namespaces (`--kill-child`: the code runs as pid 1 of its own
  namespace, so killing `unshare` takes every descendant with it) as `nobody` with the same
  rlimits; the file system is NOT hidden (only Unix permissions protect it), so `bwrap` is
  preferred.
Resource caps are rlimits set before exec (RLIMIT_AS memory, RLIMIT_CPU, RLIMIT_NPROC against
fork bombs, RLIMIT_FSIZE), plus a wall-clock timeout that kills the whole process group, then
any descendant that left it (`setsid`), and stops waiting for output a few seconds later.
Running as `nobody` matters: root ignores RLIMIT_NPROC.

Task attachments (`SandboxConfig.attachments_dir`) are visible read-only: bwrap binds them at
`/attachments`; under `unshare` (no mount namespace) the real folder is used and only Unix
permissions keep it read-only. Both backends export its path as `ATTACHMENTS_DIR`; a folder
`nobody` cannot reach is left out with a note at the top of stderr. numpy and
pandas come from the host's site-packages (`default_python_paths`), mounted read-only, when the
sandbox interpreter has the same Python minor version.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import psutil

from agent.errors import SandboxUnavailable

__all__ = [
    "ATTACHMENTS_MOUNT",
    "SandboxConfig",
    "SandboxResult",
    "default_python_paths",
    "detect_backend",
    "run_python",
]

logger = logging.getLogger(__name__)
Backend = Literal["bwrap", "unshare"]
_NOBODY = 65534
_DRAIN_S = 3.0
"""Seconds to wait for output after killing a timed-out run."""
ATTACHMENTS_MOUNT = "/attachments"
"""Where the bwrap backend shows `SandboxConfig.attachments_dir` (read-only)."""
_DEFAULT_PYTHON = "/usr/bin/python3"
_SANDBOX_PACKAGES = ("numpy", "pandas")
"""Packages the default sandbox can import from the host's site-packages."""
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Pinned to 1: BLAS thread pools would otherwise eat RLIMIT_AS and RLIMIT_NPROC."""


def _reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged user (`nobody`) can list `path` and reach it from `/`."""
    try:
        resolved = path.resolve()
        if not resolved.stat().st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in [resolved, *resolved.parents])
    except OSError:
        return False


def _python_minor(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter from its resolved file name (`python3.11`), or None."""
    m = re.fullmatch(r"python(\d+)\.(\d+)", Path(os.path.realpath(python)).name)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.cache
def default_python_paths(python: str = _DEFAULT_PYTHON) -> tuple[str, ...]:
    """Host site-packages folders holding numpy/pandas, for a sandbox running `python`.

    Empty when `python`'s minor version differs from this interpreter's (compiled wheels would
    not load) or the folders are not readable by the unprivileged sandbox user.
    """
    if _python_minor(python) != sys.version_info[:2]:
        return ()
    found: list[str] = []
    for name in _SANDBOX_PACKAGES:
        spec = importlib.util.find_spec(name)  # locates without importing
        if spec is None or spec.origin is None:
            continue
        site = Path(spec.origin).resolve().parents[1]
        if str(site) not in found and _reachable_by_others(site):
            found.append(str(site))
    return tuple(found)


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and backend of the Python sandbox."""

    timeout_s: float = 10.0
    """Wall-clock limit; the process group is killed after it."""
    cpu_s: int = 10
    """RLIMIT_CPU seconds."""
    memory_mb: int = 512
    """RLIMIT_AS (address space) in MiB."""
    max_processes: int = 64
    """RLIMIT_NPROC for the sandbox user (contains fork bombs)."""
    max_file_mb: int = 64
    """RLIMIT_FSIZE: largest file the code may write, MiB."""
    max_output_chars: int = 20_000
    """stdout/stderr returned to the caller are cut to this many characters each."""
    python: str = _DEFAULT_PYTHON
    """Interpreter inside the sandbox; must live under /usr for the bwrap backend."""
    python_paths: tuple[str, ...] = field(default_factory=default_python_paths)
    """Extra folders mounted read-only and put first on `sys.path`; by default the host
    site-packages holding numpy and pandas (see `default_python_paths`), () for none."""
    attachments_dir: Path | None = None
    """Task attachments, readable (never writable) by the code: at `/attachments` under bwrap,
    at their real path under unshare; `ATTACHMENTS_DIR` holds the path in both."""
    backend: Backend | None = None
    """Force a backend; None picks the best that works here."""

    def with_attachments(self, folder: Path | None) -> SandboxConfig:
        """This config with `attachments_dir = folder` (unchanged when `folder` is None)."""
        return self if folder is None else replace(self, attachments_dir=folder)


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run."""

    stdout: str
    stderr: str
    returncode: int
    """Exit status; negative = killed by that signal."""
    timed_out: bool
    """True when the wall-clock limit killed the run."""
    duration_s: float
    backend: str


def _bwrap_argv(work: Path, cfg: SandboxConfig, script: str) -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "bin", "sbin"):
        src = Path("/") / name
        if src.is_symlink():
            argv += ["--symlink", os.readlink(src), f"/{name}"]
        elif src.is_dir():
            argv += ["--ro-bind", str(src), f"/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--bind", str(work), "/sandbox", "--chdir", "/sandbox"]
    argv += ["--setenv", "HOME", "/sandbox", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for extra in cfg.python_paths:
        argv += ["--ro-bind", extra, extra]
    if cfg.attachments_dir is not None:
        argv += ["--ro-bind", str(cfg.attachments_dir.resolve()), ATTACHMENTS_MOUNT]
        argv += ["--setenv", "ATTACHMENTS_DIR", ATTACHMENTS_MOUNT]
    return argv + _python_cmd(cfg, script)


def _python_cmd(cfg: SandboxConfig, script: str) -> list[str]:
    """Interpreter command for `script` (isolated mode; extra sys.path entries if configured)."""
    if not cfg.python_paths:
        return [cfg.python, "-I", script]
    boot = (
        f"import sys, runpy; sys.path[:0] = {list(cfg.python_paths)!r}; "
        f"runpy.run_path({script!r}, run_name='__main__')"
    )
    return [cfg.python, "-I", "-c", boot]


def _unshare_argv(work: Path, cfg: SandboxConfig, script: str) -> list[str]:
    env = []
    if cfg.attachments_dir is not None:  # no mount namespace: expose the real path
        env = ["env", f"ATTACHMENTS_DIR={cfg.attachments_dir.resolve()}"]
    return [
        *env,
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "--pid",
        "--kill-child",
        "--",
        *_python_cmd(cfg, str(work / script)),
    ]


def _probe(argv: list[str], cfg: SandboxConfig, cwd: Path) -> bool:
    """Whether `argv` runs to exit 0 under the same limits and user as a real run."""
    prefix, spawn = _spawn_options(cfg)
    try:
        r = subprocess.run(
            prefix + argv, cwd=cwd, capture_output=True, timeout=20, check=False, **spawn
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if r.returncode != 0:
        logger.info(
            "sandbox probe %s failed: %s", argv[0], r.stderr.decode(errors="replace")[-300:]
        )
    return r.returncode == 0


_BACKEND_CACHE: dict[str, Backend | None] = {}


def detect_backend(python: str = "/usr/bin/python3") -> Backend | None:
    """The best sandbox backend that actually runs here (cached), or None."""
    if python in _BACKEND_CACHE:
        return _BACKEND_CACHE[python]
    found: Backend | None = None
    if os.path.exists(python):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "probe.py").write_text("pass\n")
            os.chmod(work, 0o777)
            cfg = SandboxConfig(python=python, python_paths=())
            if shutil.which("bwrap") and _probe(_bwrap_argv(work, cfg, "probe.py"), cfg, work):
                found = "bwrap"
            elif shutil.which("unshare") and _probe(
                _unshare_argv(work, cfg, "probe.py"), cfg, work
            ):
                found = "unshare"
    _BACKEND_CACHE[python] = found
    return found


def _spawn_options(cfg: SandboxConfig) -> tuple[list[str], dict[str, Any]]:
    """Command prefix and Popen options that apply the rlimits and drop root to `nobody`.

    With util-linux `prlimit` no Python runs between fork and exec (preexec_fn is unsafe in
    the threaded MCP server); Popen's `user=`/`group=` drop privileges first, then prlimit
    lowers its own limits and execs the sandbox.
    """
    drop = os.geteuid() == 0
    if shutil.which("prlimit"):
        mib = 1 << 20
        prefix = [
            "prlimit",
            f"--as={cfg.memory_mb * mib}",
            f"--cpu={cfg.cpu_s}:{cfg.cpu_s + 1}",
            f"--nproc={cfg.max_processes}",
            f"--fsize={cfg.max_file_mb * mib}",
            "--core=0",
            "--",
        ]
        opts: dict[str, Any] = (
            {"user": _NOBODY, "group": _NOBODY, "extra_groups": []} if drop else {}
        )
        return prefix, opts
    return [], {"preexec_fn": lambda: _limits(cfg, drop)}


def _limits(cfg: SandboxConfig, drop_privileges: bool) -> None:
    """Runs in the child before exec: rlimits, then drop to `nobody` (rlimits apply to it)."""
    mib = 1 << 20
    resource.setrlimit(resource.RLIMIT_AS, (cfg.memory_mb * mib, cfg.memory_mb * mib))
    resource.setrlimit(resource.RLIMIT_CPU, (cfg.cpu_s, cfg.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.max_file_mb * mib, cfg.max_file_mb * mib))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes, cfg.max_processes))
    if drop_privileges:
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more]"


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's process group and every descendant (also those that called setsid)."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _kill_and_drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Kill a timed-out run and collect its output without waiting on escaped pipe holders."""
    _kill_tree(proc)
    try:
        return proc.communicate(timeout=_DRAIN_S)
    except subprocess.TimeoutExpired:
        # Something outside the tree still holds the pipes: give up on the rest of the output.
        _kill_tree(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait(timeout=_DRAIN_S)
        return b"", b"[sandbox: output lost after the time limit]"


def _usable_attachments(cfg: SandboxConfig) -> tuple[SandboxConfig, str]:
    """`cfg` and '' when its attachments folder can be shown; else `cfg` without it and a note.

    A folder the sandbox user `nobody` cannot reach (it needs o+rx, and o+x on every parent)
    must not make every `run_python` call fail, so the run goes ahead without it and its
    stderr starts with the reason.
    """
    folder = cfg.attachments_dir
    if folder is None:
        return cfg, ""
    problem = ""
    if not folder.is_dir():
        problem = "does not exist"
    elif os.geteuid() == 0 and not _reachable_by_others(folder):
        problem = "is not readable by the sandbox user (needs o+rx, and o+x on its parents)"
    if not problem:
        return cfg, ""
    logger.warning("sandbox attachments folder %s %s; running without it", folder, problem)
    note = f"[sandbox: the attachments folder {problem}; {ATTACHMENTS_MOUNT} is unavailable]\n"
    return replace(cfg, attachments_dir=None), note


def run_python(code: str, cfg: SandboxConfig | None = None) -> SandboxResult:
    """Run `code` in a fresh sandbox with a throwaway work folder (deleted afterwards)."""
    cfg = cfg or SandboxConfig()
    backend = cfg.backend or detect_backend(cfg.python)
    if backend is None:
        raise SandboxUnavailable(
            "no sandbox backend works here: install bubblewrap (apt-get install bubblewrap; "
            "scripts/setup.sh does this as root) or allow user namespaces for `unshare -n`"
        )
    cfg, note = _usable_attachments(cfg)
    prefix, spawn = _spawn_options(cfg)
    with tempfile.TemporaryDirectory(prefix="memento-sandbox-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o777)
        (work / "main.py").write_text(code, encoding="utf-8")
        argv = (
            _bwrap_argv(work, cfg, "main.py")
            if backend == "bwrap"
            else _unshare_argv(work, cfg, "main.py")
        )
        cwd = str(work)
        start = time.monotonic()
        proc = subprocess.Popen(
            prefix + argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **dict.fromkeys(_THREAD_ENV, "1")},
            start_new_session=True,
            **spawn,
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            out, err = _kill_and_drain(proc)
        duration = time.monotonic() - start
    return SandboxResult(
        stdout=_cut(out.decode("utf-8", "replace"), cfg.max_output_chars),
        stderr=_cut(note + err.decode("utf-8", "replace"), cfg.max_output_chars),
        returncode=proc.returncode,
        timed_out=timed_out,
        duration_s=duration,
        backend=backend,
    )
