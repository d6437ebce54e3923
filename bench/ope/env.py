"""The pinned OBP environment, built on demand by the one side-venv helper (`bench.side_venv`),
as the RecBole one is.

`sb-obp==0.5.10` (the maintained fork of obp 0.5.7, which needs Python<3.11) pins numpy<2 and
pandas<3 and wants torch>=2.2, which clash with the project's .venv. The venv lives at
`<repo>/.cache/memento/obp-venv`: torch (the pinned CPU build) is installed first and alone so
pip never pulls a CUDA wheel, then sb-obp and its pins; an import probe and a marker file
(holding the specs) make later calls return at once.

sb-obp's dependency pyieoe pulls the original `obp` 0.4.1, which installs into the same `obp/`
folder: sb-obp is reinstalled alone (`--no-deps --force-reinstall`) last, so its files win
whatever order pip chose, and the probe checks that the module is sb-obp's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.errors import OpeRunError
from bench.side_venv import SideVenv, ensure_venv

__all__ = ["ObpEnvConfig", "ensure_obp_env"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ObpEnvConfig:
    """The pinned OBP environment."""

    path: Path = REPO_ROOT / ".cache" / "memento" / "obp-venv"
    """Where the venv lives (created on first use, reused afterwards)."""
    torch_spec: str = "torch==2.13.0"
    """Installed first and alone, so sb-obp's torch>=2.2 is already met by the CPU build."""
    packages: tuple[str, ...] = ("sb-obp==0.5.10", "numpy<2", "pandas<3")
    """OBP first (reinstalled alone at the end), then the pins it needs (scikit-learn, scipy,
    matplotlib... come with it)."""
    python: str = sys.executable
    """Interpreter that creates the venv."""

    def venv(self) -> SideVenv:
        """The side venv these specs describe (`bench.side_venv`)."""
        marker = {"torch": self.torch_spec, "packages": list(self.packages), "layout": 2}
        obp = self.packages[0]
        return SideVenv(
            label="OBP",
            path=self.path,
            installs=(
                ((self.torch_spec,), "install torch (CPU) into OBP venv"),
                (self.packages, "install sb-obp into OBP venv"),
                (("--no-deps", "--force-reinstall", obp), "reinstall sb-obp alone"),
            ),
            probe=(
                "import inspect, torch, numpy, sklearn; from obp.ope import OffPolicyEvaluation; "
                "assert torch.version.cuda is None, torch.__version__; "
                "assert numpy.__version__ < '2', numpy.__version__; "
                "assert 'pi_b' in "
                "inspect.signature(OffPolicyEvaluation.estimate_intervals).parameters"
            ),
            marker=json.dumps(marker),
            python=self.python,
        )


def ensure_obp_env(cfg: ObpEnvConfig | None = None) -> Path:
    """Create (once) the pinned OBP venv; returns its python. Takes minutes the first time
    (the torch download); concurrent callers wait on a file lock instead of building twice.
    Raises `OpeRunError` with the failing step's output tail."""
    return ensure_venv((cfg or ObpEnvConfig()).venv(), OpeRunError)
