"""Simulators by name (the `--simulator` choices)."""

from __future__ import annotations

from bench.errors import UnknownSimulatorError
from bench.sim.base import Simulator

SIMULATORS = ("planted", "movielens")
"""Names `make_simulator` knows."""


def make_simulator(name: str, seed: int) -> Simulator:
    """A fresh simulator for the seed; `UnknownSimulatorError` for any other name."""
    if name == "planted":
        from bench.sim.planted import PlantedSimulator

        return PlantedSimulator(seed)
    if name == "movielens":
        from bench.sim.movielens import MovieLensSimulator

        return MovieLensSimulator(seed)
    raise UnknownSimulatorError(
        f"unknown simulator {name!r}; choose one of {', '.join(SIMULATORS)}"
    )


__all__ = ["SIMULATORS", "make_simulator"]
