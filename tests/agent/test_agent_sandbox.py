"""Sandbox tests: network blocked, outside files unreadable, fork/memory bombs, time limit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tools.sandbox import SandboxConfig, default_python_paths, detect_backend, run_python

BACKEND = detect_backend()
pytestmark = pytest.mark.skipif(
    BACKEND is None, reason="no sandbox backend here (install bubblewrap, see scripts/setup.sh)"
)
needs_bwrap = pytest.mark.skipif(
    BACKEND != "bwrap", reason="file-system isolation needs the bubblewrap backend"
)


def test_runs_code_and_captures_output() -> None:
    """Plain code runs and its stdout, stderr and exit code come back."""
    r = run_python("import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)\nsys.exit(3)")
    assert (r.stdout, r.stderr.strip(), r.returncode, r.timed_out) == ("42\n", "oops", 3, False)


def test_network_is_blocked() -> None:
    """Opening a TCP connection (even to loopback) fails inside the sandbox."""
    code = (
        "import socket\n"
        "for addr in [('1.1.1.1', 80), ('127.0.0.1', 22)]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=2)\n"
        "        print('CONNECTED')\n"
        "    except OSError as e:\n"
        "        print('blocked', e.errno)\n"
    )
    r = run_python(code)
    assert "CONNECTED" not in r.stdout
    assert r.stdout.count("blocked") == 2, r.stderr


@needs_bwrap
def test_files_outside_work_folder_are_unreadable(tmp_path: Path) -> None:
    """A file outside the throwaway folder (and the repository) cannot be read or listed."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)  # world-readable: only the sandbox can stop the read
    repo_file = Path(__file__).resolve()
    code = (
        "import os\n"
        f"for p in [{str(secret)!r}, {str(repo_file)!r}, '/etc/passwd', '/root']:\n"
        "    try:\n"
        "        print(open(p).read()[:20] if os.path.isfile(p) else os.listdir(p))\n"
        "    except OSError as e:\n"
        "        print('denied', type(e).__name__)\n"
        "open('mine.txt', 'w').write('ok'); print(open('mine.txt').read())\n"
    )
    r = run_python(code)
    assert "TOP-SECRET" not in r.stdout
    assert r.stdout.count("denied") == 4, (r.stdout, r.stderr)
    assert r.stdout.rstrip().endswith("ok")


def test_work_folder_is_thrown_away() -> None:
    """A file written in one run is gone in the next run."""
    run_python("open('left.txt', 'w').write('x')")
    r = run_python("import os; print(os.path.exists('left.txt'))")
    assert r.stdout.strip() == "False"


def test_fork_bomb_is_contained() -> None:
    """Unbounded forking hits the process cap (EAGAIN) and the run still ends in time."""
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('capped', n, e.errno)\n"
    )
    cfg = SandboxConfig(timeout_s=8, max_processes=20)
    r = run_python(code, cfg)
    assert r.stdout.startswith("capped"), (r.stdout, r.stderr)
    assert int(r.stdout.split()[1]) < 20
    assert r.duration_s < 15


def test_memory_bomb_is_contained() -> None:
    """Allocating past the memory cap raises MemoryError inside the sandbox, not on the host."""
    code = (
        "try:\n"
        "    x = bytearray(1024 * 1024 * 1024)\n"
        "    print('ALLOCATED')\n"
        "except MemoryError:\n"
        "    print('memory capped')\n"
    )
    r = run_python(code, SandboxConfig(memory_mb=256))
    assert r.stdout.strip() == "memory capped", r.stderr


def test_time_limit_is_enforced() -> None:
    """An endless loop is killed at the wall-clock limit and reported as timed out."""
    r = run_python("while True:\n    pass\n", SandboxConfig(timeout_s=1.5, cpu_s=30))
    assert r.timed_out
    assert r.returncode < 0
    assert r.duration_s < 6


def test_cpu_limit_kills_busy_code() -> None:
    """With a generous wall clock, RLIMIT_CPU stops a busy loop (SIGXCPU/SIGKILL)."""
    r = run_python("while True:\n    pass\n", SandboxConfig(timeout_s=20, cpu_s=1))
    assert not r.timed_out
    assert r.returncode != 0
    assert r.duration_s < 10


def test_preexec_fallback_without_prlimit_still_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without util-linux prlimit the rlimits are set in preexec_fn and still contain a bomb."""
    import shutil

    from agent.tools import sandbox

    real_which = shutil.which
    monkeypatch.setattr(
        sandbox.shutil, "which", lambda name: None if name == "prlimit" else real_which(name)
    )
    prefix, spawn = sandbox._spawn_options(SandboxConfig())
    assert prefix == [] and "preexec_fn" in spawn
    r = run_python("x = bytearray(1024 ** 3)", SandboxConfig(memory_mb=256))
    assert "MemoryError" in r.stderr


def test_unshare_backend_blocks_network() -> None:
    """The fallback `unshare` backend (user + net namespaces) also has no network."""
    cfg = SandboxConfig(backend="unshare")
    if run_python("pass", cfg).returncode != 0:
        pytest.skip("unshare backend does not work here")
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
    code += "    print('CONNECTED')\nexcept OSError:\n    print('blocked')\n"
    r = run_python(code, cfg)
    assert (r.stdout.strip(), r.backend) == ("blocked", "unshare")


def test_python_paths_expose_site_packages_read_only() -> None:
    """With `python_paths` the sandbox imports numpy from the host site-packages, read-only."""
    import stat

    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    if any(not (p.stat().st_mode & stat.S_IXOTH) for p in [site, *site.parents]):
        pytest.skip(f"{site} is not reachable by the unprivileged sandbox user")
    code = (
        "import numpy as np\n"
        "print(int(np.arange(5).sum()))\n"
        "try:\n"
        "    open(np.__file__, 'a')\n"
        "    print('WRITABLE')\n"
        "except OSError:\n"
        "    print('read-only')\n"
    )
    r = run_python(code, SandboxConfig(python_paths=(str(site),)))
    assert r.stdout.split() == ["10", "read-only"], r.stderr


@pytest.fixture
def attachments() -> Iterator[Path]:
    """A folder under /tmp that the unprivileged sandbox user can read, with a small CSV."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="memento-att-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        (folder / "x.csv").write_text("item,units\napple,12\npear,30\n")
        os.chmod(folder / "x.csv", 0o644)
        yield folder


def test_default_sandbox_imports_numpy_and_pandas() -> None:
    """The default config mounts the host site-packages, so numpy and pandas import."""
    if not default_python_paths():
        pytest.skip("no site-packages with numpy/pandas usable by the sandbox interpreter")
    r = run_python(
        "import numpy as np, pandas as pd\n"
        "print(int(np.arange(4).sum()), len(pd.DataFrame({'a': [1, 2]})))"
    )
    assert r.stdout.split() == ["6", "2"], r.stderr


def test_default_python_paths_empty_for_other_python_version() -> None:
    """Compiled wheels are not offered to an interpreter of another minor version."""
    assert default_python_paths("/nonexistent/python2.7") == ()


@needs_bwrap
def test_pandas_reads_attachment_and_attachments_are_read_only(attachments: Path) -> None:
    """Code reads /attachments/x.csv with pandas; creating or changing files there fails."""
    if not default_python_paths():
        pytest.skip("pandas not available to the sandbox interpreter")
    code = (
        "import os, pandas as pd\n"
        "print(os.environ['ATTACHMENTS_DIR'])\n"
        "print(int(pd.read_csv('/attachments/x.csv')['units'].sum()))\n"
        "for p, mode in [('/attachments/new.txt', 'w'), ('/attachments/x.csv', 'a')]:\n"
        "    try:\n"
        "        open(p, mode).write('x')\n"
        "        print('WROTE')\n"
        "    except OSError as e:\n"
        "        print('denied', type(e).__name__)\n"
    )
    r = run_python(code, SandboxConfig(attachments_dir=attachments))
    assert r.stdout.split() == [
        "/attachments",
        "42",
        "denied",
        "OSError",
        "denied",
        "PermissionError",
    ], r.stderr
    assert sorted(p.name for p in attachments.iterdir()) == ["x.csv"]
    assert (attachments / "x.csv").read_text().endswith("pear,30\n")


def test_unshare_backend_sees_attachments_via_env(attachments: Path) -> None:
    """Under the unshare backend ATTACHMENTS_DIR points at the real, readable folder."""
    cfg = SandboxConfig(backend="unshare", attachments_dir=attachments)
    if run_python("pass", cfg).returncode != 0:
        pytest.skip("unshare backend does not work here")
    code = (
        "import os\n"
        "d = os.environ['ATTACHMENTS_DIR']\n"
        "print(open(os.path.join(d, 'x.csv')).readline().strip())"
    )
    r = run_python(code, cfg)
    assert r.stdout.strip() == "item,units", r.stderr


def test_unreadable_attachments_folder_is_left_out_with_a_note(tmp_path: Path) -> None:
    """A missing attachments folder does not break the run; stderr explains why it is absent."""
    r = run_python("print(1)", SandboxConfig(attachments_dir=tmp_path / "missing"))
    assert r.stdout == "1\n"
    assert r.stderr.startswith("[sandbox: the attachments folder does not exist")
