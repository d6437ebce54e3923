"""A method of the online benchmark served by the real HTTP service (`memento serve`).

Each method runs its own uvicorn process (`serving.process.ServerProcess`) on a fresh model over
the simulator's catalogue: the items scorer, the learner mode of the method, case memory on or
off, gamma > 0 and dwell in the reward. The client speaks only HTTP:
- a user's warm-up history and every later decision's events go to `POST /v1/events`, stamped
  with simulator time (`SimClock`), so the service rebuilds the state from its own store;
- `POST /v1/recommend` with `at` = simulator time and the user's acted items excluded (the
  seen-item rule every method gets);
- every decision is closed with `POST /v1/outcomes`: each shown item once, the acted ones with
  their deepest action and dwell seconds, the others with none (zero-reward evidence). That is
  what updates Q online (the acted items, and a no-click decision once) and writes the cases
  (one per shown item, at the decision's simulator time).
A full learner queue answers 503 with Retry-After: the client waits and retries (the outcome's
rows are keyed by the decision, so a retry stores only what was not stored), so no feedback is
lost.

The calls go through a `Transport`: `HttpTransport` speaks HTTP to a uvicorn process (or a
service at `--url`); `bench.online.inprocess.InProcessService` calls the same
`RecommendService` methods the routes call, in this process, with the same request bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import polars as pl

from bench.errors import ServiceUnavailableError
from bench.sim.base import SIM_REWARD, HistoryEvent, SimEvent
from serving.process import ServerProcess

log = logging.getLogger(__name__)

_WRITE_KEY = "memento-bench-write"
_READ_KEY = "memento-bench-read"

SERVICE_METHODS: dict[str, dict[str, str]] = {
    "soft-q": {"MEMENTO_FRESH__LEARNER__MODE": "soft-q", "MEMENTO_MEMORY": "true"},
    "non-parametric": {"MEMENTO_FRESH__LEARNER__MODE": "non-parametric", "MEMENTO_MEMORY": "true"},
    "tabular": {"MEMENTO_FRESH__LEARNER__MODE": "tabular", "MEMENTO_MEMORY": "true"},
    "no-memory": {"MEMENTO_FRESH__LEARNER__MODE": "soft-q", "MEMENTO_MEMORY": "false"},
}
"""Methods the benchmark runs through the service, and the settings that make each."""


@dataclass(frozen=True)
class SimClock:
    """Simulator seconds -> unix seconds: `base` + sim time, with `base` 30 days in the past
    (the service runs on the request's `at`: decisions, their cases and s' live on this
    clock; the offset only keeps the stamps plausible unix times)."""

    base: float

    @staticmethod
    def start() -> SimClock:
        """A clock whose simulator time 0 is 30 days ago."""
        return SimClock(time.time() - 30 * 86400.0)

    def at(self, sim_seconds: float) -> float:
        """Unix seconds of a simulator time."""
        return self.base + sim_seconds


class Transport(Protocol):
    """Where a `ServicePolicy` sends its calls: a path, a JSON body and a key in, the JSON
    answer out (`ServiceUnavailableError` when the service cannot answer)."""

    retries: int
    """Calls answered 503 (queue full) and retried."""

    def post(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        """The answer of one `POST path`."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class HttpTransport:
    """`Transport` over HTTP: a 503 with Retry-After is waited out and retried (30 s at
    most)."""

    def __init__(self, name: str, url: str, timeout_s: float = 300.0) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
        self.name = name
        self._http = httpx.Client(base_url=url, timeout=timeout_s)
        self.retries = 0

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def post(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        """`POST path` with the bearer key; the JSON answer."""
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(600):
            try:
                r = self._http.post(path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ServiceUnavailableError(f"{self.name}: {path} failed: {exc}") from exc
            if r.status_code == 503 and r.headers.get("Retry-After"):
                self.retries += 1
                time.sleep(0.05)
                continue
            if r.status_code >= 400:
                raise ServiceUnavailableError(
                    f"{self.name}: {path} answered {r.status_code}: {r.text[:300]}"
                )
            out: dict[str, Any] = r.json()
            return out
        raise ServiceUnavailableError(f"{self.name}: {path} stayed busy (503) for 30 s")


class ServicePolicy:
    """One method behind a live service; `recommend` / `learn` as the in-process peers."""

    def __init__(
        self,
        name: str,
        *,
        transport: Transport,
        clock: SimClock,
        write_key: str = _WRITE_KEY,
        read_key: str = _READ_KEY,
    ) -> None:
        self.name = name
        self._write_key, self._read_key = write_key, read_key
        self.clock = clock
        self._transport = transport
        self._known: set[str] = set()
        self._decision: dict[str, tuple[str, list[str]]] = {}

    @property
    def retries(self) -> int:
        """Calls answered 503 (queue full) and retried."""
        return self._transport.retries

    def close(self) -> None:
        """Close the transport."""
        self._transport.close()

    def _post(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        return self._transport.post(path, body, key)

    def _events(self, user_id: str, events: Sequence[HistoryEvent]) -> None:
        if events:
            body = [
                {"item_id": e.item_id, "action": e.action, "ts": self.clock.at(e.ts)}
                for e in events
            ]
            self._post("/v1/events", {"user_id": user_id, "events": body}, self._write_key)

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int, now: float
    ) -> tuple[list[str], list[float | None]]:
        """The service's list for the user at simulator time `now`, with its propensities."""
        if user_id not in self._known:  # a newcomer: their warm-up history
            self._known.add(user_id)
            self._events(user_id, history)
        seen = sorted({e.item_id for e in history})
        body = {"user_id": user_id, "n": n, "exclude_items": seen, "at": self.clock.at(now)}
        out = self._post("/v1/recommend", body, self._read_key)
        items = [str(i["item_id"]) for i in out["items"]]
        self._decision[user_id] = (str(out["decision_id"]), items)
        pscores = [i.get("propensity") for i in out["items"]]
        return items, pscores

    def last_decision(self, user_id: str) -> str:
        """Decision id of the list last recommended to the user (not yet answered)."""
        return self._decision[user_id][0]

    def learn(self, user_id: str, events: Sequence[SimEvent], now: float) -> None:
        """The last decision's outcome (every shown item, acted ones with their action), then
        the events themselves."""
        decision, shown = self._decision.pop(user_id)
        acted = {e.item_id: e for e in events}
        impressions = [
            {
                "item_id": i,
                "action": acted[i].action,
                "dwell_seconds": round(acted[i].dwell_seconds, 3),
            }
            if i in acted
            else {"item_id": i}
            for i in shown
        ]
        if impressions:
            body = {"decision_id": decision, "impressions": impressions}
            self._post("/v1/outcomes", body, self._write_key)
        self._events(user_id, [HistoryEvent(e.item_id, e.action, now) for e in events])


def check_service(url: str, timeout_s: float = 5.0) -> None:
    """Raise `ServiceUnavailableError` unless a service answers `/readyz` at `url`."""
    try:
        r = httpx.get(url.rstrip("/") + "/readyz", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"no service answers at {url} ({type(exc).__name__}); start one with `memento serve`"
            " (MEMENTO_FRESH__RECOMMEND__SCORER=items) or leave out --url to let the benchmark"
            " start its own"
        ) from exc
    if r.status_code != 200:
        raise ServiceUnavailableError(f"the service at {url} is not ready: {r.text[:300]}")


def service_env(
    method: str,
    catalogue: tuple[list[str], list[str]],
    workdir: Path,
    *,
    seed: int,
    features: list[list[str]] | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The `MEMENTO_*` settings of a fresh service for `method` over the catalogue (its own
    database and `items.parquet` under `workdir`, written here)."""
    if method not in SERVICE_METHODS:
        raise ValueError(f"unknown service method {method!r}; known: {sorted(SERVICE_METHODS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    ids, titles = catalogue
    if features is not None:  # the public item attributes every peer sees, as title words
        titles = [f"{t} {' '.join(f)}" for t, f in zip(titles, features, strict=True)]
    items = workdir / "items.parquet"
    pl.DataFrame({"item_id": ids, "title": titles}).write_parquet(items)
    return {
        "MEMENTO_API_KEY": _WRITE_KEY,
        "MEMENTO_READ_API_KEY": _READ_KEY,
        "MEMENTO_DB_PATH": str(workdir / "memento.sqlite3"),
        "MEMENTO_MODEL_URI": "none",
        "MEMENTO_ITEMS_PATH": str(items),
        "MEMENTO_FRESH__TEXT__KIND": "hashing",
        "MEMENTO_FRESH__RECOMMEND__SCORER": "items",
        "MEMENTO_POLICY": "sample",
        "MEMENTO_FRESH__REWARD__DWELL_WEIGHT": str(SIM_REWARD.dwell_weight),
        "MEMENTO_FRESH__LEARNER__SEED": str(seed),
        "MEMENTO_CHECKPOINT_EVERY": "100000",
        **SERVICE_METHODS[method],
        **(extra_env or {}),
    }


def start_service(method: str, env: dict[str, str], workdir: Path) -> ServerProcess:
    """A uvicorn process serving `env` (`service_env`), its log under `workdir`."""
    proc = ServerProcess(env, log=workdir / "service.log")
    try:
        return proc.start(timeout_s=120.0)
    except RuntimeError as exc:
        raise ServiceUnavailableError(f"{method}: the service did not start: {exc}") from exc


__all__ = [
    "SERVICE_METHODS",
    "HttpTransport",
    "ServicePolicy",
    "ServiceUnavailableError",
    "SimClock",
    "Transport",
    "check_service",
    "service_env",
    "start_service",
]
