"""Soak: the service under sustained concurrent traffic (`memento bench soak`).

`run_soak(cfg)` starts the service (`python -m serving.cli` on loopback, a fresh SQLite store
in a temporary folder, every other setting as `memento serve` has it: the registered champion
when `memento train` ran) or targets a running one (`cfg.url`, then `cfg.db_path` / `cfg.pid`
name its store and process). `cfg.concurrency` client threads loop for `cfg.minutes`:

    recommend -> (feedback_share) feedback on one shown item with a fresh idempotency key,
    re-sent with the same key (repeat_share: must answer `duplicate` with the same id)
    -> an event on a shown item -> (case_read_share) the user's cases, then one of them
    -> every `erase_every` loops: erase one of the client's users (retired afterwards)

Each client owns its users (`soak-<run>-c<k>-u<j>`), so its ledger of acknowledged writes is
exact. A sampler thread reads the service's resident memory (psutil) and `/metrics` (learner
queue depth, updates) every `sample_every_s`. After the traffic the learner is given
`drain_timeout_s` to empty its queue, then the store is checked (`bench.soak_report`).
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from bench.soak_probe import LearnerStats, Sampler, drain, learner_stats, pid_of_port
from bench.soak_report import (
    Call,
    Ledger,
    RouteStats,
    Sample,
    StoreCheck,
    check_store,
    plot_soak,
    route_stats,
    slope_per_minute,
)
from serving.process import ServerProcess
from serving.settings import ServingSettings

__all__ = ["SoakConfig", "SoakResult", "run_soak"]

logger = logging.getLogger(__name__)

_ACTIONS = ("click", "click", "click", "collect", "cart", "alipay")


@dataclass(frozen=True)
class SoakConfig:
    """One soak run."""

    minutes: float = 1.0
    """Duration of the traffic."""
    concurrency: int = 8
    """Client threads, each with one request in flight."""
    url: str | None = None
    """Target this running service; None: start one (fresh store in a temporary folder)."""
    db_path: Path | None = None
    """The target's SQLite store for the exactly-once check (None with `url`: no check)."""
    pid: int | None = None
    """The target's process for the memory samples (None with `url`: found by its port)."""
    server_env: tuple[tuple[str, str], ...] = ()
    """Extra `MEMENTO_*` variables of a started service (e.g. the test catalogue; its keys are
    the clients' too). Keys otherwise come from this process's `MEMENTO_*` environment, as
    `memento serve` started from the same shell reads them."""
    users_per_client: int = 40
    """Users each client draws from (erased ones are replaced by new ids)."""
    feedback_share: float = 0.5
    """Share of recommends followed by feedback."""
    repeat_share: float = 0.2
    """Share of accepted feedback sent a second time with the same idempotency key."""
    case_read_share: float = 0.2
    """Share of loops that list the user's cases (and read one of them)."""
    erase_every: int = 100
    """A client erases one of its users every this many loops (0: never)."""
    sample_every_s: float = 5.0
    """Memory and learner sampling period."""
    window_s: float = 30.0
    """Latency percentiles are reported per window of this length."""
    drain_timeout_s: float = 120.0
    """After the traffic, wait this long at most for the learner queue to empty."""
    start_timeout_s: float = 600.0
    """Wait this long at most for a started service to become ready."""
    seed: int = 0
    """Seed of the clients' choices."""
    out_dir: Path | None = None
    """Write `soak.json`, `soak.png` and (a started service's) `server.log` here."""


@dataclass(frozen=True)
class SoakResult:
    """Everything `memento bench soak` reports (`asdict` gives the JSON)."""

    url: str
    """Service measured."""
    minutes: float
    """Traffic duration asked for."""
    concurrency: int
    """Client threads."""
    seconds: float
    """Traffic duration measured."""
    loops: int
    """Client loops completed."""
    routes: dict[str, RouteStats]
    """Per route: statuses, shares, latency percentiles overall and over time."""
    five_xx: int
    """Answers of 500 or more over every route, 503 included (queue full is one)."""
    five_xx_not_503: int
    """Answers of 500 or more other than 503: server errors, never expected."""
    transport_errors: int
    """Calls without an answer (connection refused, timeout)."""
    feedback_accepted: int
    """Feedback answered 202 (first sending)."""
    feedback_refused: int
    """Feedback answered 503 (learner queue full)."""
    share_503_feedback: float
    """refused / (accepted + refused)."""
    learner: LearnerStats
    """Apply rate, queue depth and lag."""
    rss_mb_start: float | None
    """Resident memory at the first sample."""
    rss_mb_end: float | None
    """Resident memory at the last sample of the traffic."""
    rss_slope_mb_per_min_second_half: float | None
    """Least-squares slope of the resident memory over the second half of the traffic."""
    rss_floor_slope_mb_per_min_second_half: float | None
    """The same over each sample's floor (transient arrays of requests and updates left out)."""
    samples: list[Sample]
    """Every sample (traffic and drain)."""
    store: StoreCheck | None
    """The exactly-once and erasure check (None: no store to read)."""
    plot: str | None = None
    """The PNG written, if any."""
    notes: list[str] = field(default_factory=list)
    """What could not be measured, and why."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class _Client:
    """One client thread: its users, its calls and its ledger."""

    def __init__(self, k: int, cfg: SoakConfig, run: str, url: str, keys: tuple[str, str]):
        self.k, self.cfg, self.run, self.url = k, cfg, run, url
        self.rng = random.Random(cfg.seed * 1000 + k)
        self._n = 0
        self.users = [self._user() for _ in range(cfg.users_per_client)]
        self.write = {"Authorization": f"Bearer {keys[0]}"}
        self.read = {"Authorization": f"Bearer {keys[1]}"}
        self.calls: list[Call] = []
        self.ledger = Ledger()
        self.keys_of: dict[str, list[str]] = {}
        self.loops = 0
        self.t0 = 0.0
        self._last_ts = 0.0

    def _user(self) -> str:
        self._n += 1
        return f"soak-{self.run}-c{self.k}-u{self._n}"

    def call(self, http: httpx.Client, route: str, method: str, path: str, **kw: Any) -> Any:
        """Send one request; record (route, status, when, latency); the response or None."""
        start = time.monotonic()
        try:
            r = http.request(method, path, **kw)
        except httpx.HTTPError:
            self.calls.append(Call(route, 0, start - self.t0, (time.monotonic() - start) * 1e3))
            return None
        self.calls.append(
            Call(route, r.status_code, start - self.t0, r.elapsed.total_seconds() * 1e3)
        )
        return r

    def loop(self, stop: threading.Event, t0: float) -> None:
        """Run steps until `stop` is set."""
        self.t0 = t0
        with httpx.Client(base_url=self.url, timeout=60.0) as http:
            while not stop.is_set():
                self.step(http)
                self.loops += 1

    def step(self, http: httpx.Client) -> None:
        """One loop: recommend, feedback, event, case reads, erasure (module docstring)."""
        cfg, rng = self.cfg, self.rng
        user = rng.choice(self.users)
        r = self.call(
            http,
            "recommend",
            "POST",
            "/v1/recommend",
            json={"user_id": user, "n": 10},
            headers=self.read,
        )
        body: dict[str, Any] = r.json() if r is not None and r.status_code == 200 else {}
        items = [str(i["item_id"]) for i in body.get("items", [])]
        if items and rng.random() < cfg.feedback_share:
            self.feedback(http, user, str(body["decision_id"]), rng.choice(items))
        if items:
            ts = max(time.time(), self._last_ts + 1e-3)
            self._last_ts = ts
            event = (user, rng.choice(items), rng.choice(_ACTIONS), ts)
            r = self.call(
                http,
                "events",
                "POST",
                "/v1/events",
                headers=self.write,
                json={
                    "user_id": user,
                    "events": [{"item_id": event[1], "action": event[2], "ts": ts}],
                },
            )
            if r is not None and r.status_code == 202:
                self.ledger.events.append(event)
        if rng.random() < cfg.case_read_share:
            r = self.call(
                http, "cases_list", "GET", "/v1/cases", params={"user_id": user}, headers=self.write
            )
            cases = r.json()["cases"] if r is not None and r.status_code == 200 else []
            if cases:
                cid = rng.choice(cases)["case_id"]
                self.call(http, "case_get", "GET", f"/v1/cases/{cid}", headers=self.write)
        if cfg.erase_every and self.loops % cfg.erase_every == cfg.erase_every - 1:
            self.erase(http, user)

    def feedback(self, http: httpx.Client, user: str, decision: str, item: str) -> None:
        """Feedback with a fresh key; sometimes the same key again (a client retry)."""
        key = f"{user}-{uuid.uuid4().hex[:12]}"
        self.keys_of.setdefault(user, []).append(key)
        body = {
            "decision_id": decision,
            "item_id": item,
            "idempotency_key": key,
            "action": self.rng.choice(_ACTIONS),
        }
        r = self.call(http, "feedback", "POST", "/v1/feedback", json=body, headers=self.write)
        if r is None:
            return
        if r.status_code == 503:
            self.ledger.refused.add(key)
            return
        if r.status_code != 202:
            return
        fid = int(r.json()["feedback_id"])
        self.ledger.feedback[key] = fid
        if self.rng.random() < self.cfg.repeat_share:
            again = self.call(
                http, "feedback_repeat", "POST", "/v1/feedback", json=body, headers=self.write
            )
            if again is not None and again.status_code == 202:
                out = again.json()
                if not out["duplicate"] or int(out["feedback_id"]) != fid:
                    self.ledger.repeat_mismatch += 1

    def erase(self, http: httpx.Client, user: str) -> None:
        """Erase a user; on 200 retire it (its writes must be gone) and draw a new one."""
        r = self.call(http, "erase", "DELETE", f"/v1/users/{user}", headers=self.write)
        if r is None or r.status_code != 200:
            return
        self.ledger.erased.append(user)
        self.ledger.erased_keys |= set(self.keys_of.pop(user, []))
        self.users[self.users.index(user)] = self._user()


def _traffic(
    cfg: SoakConfig, url: str, pid: int | None, keys: tuple[str, str], run: str
) -> tuple[list[_Client], Sampler, float, float | None]:
    """Clients + sampler for `cfg.minutes`, then the drain: (clients, sampler, seconds, drain)."""
    clients = [_Client(k, cfg, run, url, keys) for k in range(cfg.concurrency)]
    sampler = Sampler(url, pid, cfg.sample_every_s)
    stop, stop_sampler = threading.Event(), threading.Event()
    t0 = time.monotonic()
    threads = [threading.Thread(target=c.loop, args=(stop, t0), daemon=True) for c in clients]
    threads.append(threading.Thread(target=sampler.run, args=(stop_sampler, t0), daemon=True))
    for th in threads:
        th.start()
    stop.wait(cfg.minutes * 60.0)
    stop.set()
    for th in threads[:-1]:
        th.join()
    seconds = time.monotonic() - t0
    stop_sampler.set()
    threads[-1].join()
    sampler.sample(seconds)  # the last sample of the traffic
    return clients, sampler, seconds, drain(sampler, t0, cfg.drain_timeout_s)


def run_soak(cfg: SoakConfig) -> SoakResult:
    """Start (or target) the service, run the traffic, drain, check the store, report."""
    settings, extra = ServingSettings(), dict(cfg.server_env)
    keys = (
        extra.get("MEMENTO_API_KEY") or settings.api_key.get_secret_value(),
        extra.get("MEMENTO_READ_API_KEY") or settings.read_api_key.get_secret_value(),
    )
    run = uuid.uuid4().hex[:8]
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="memento-soak-") as tmp:
        server: ServerProcess | None = None
        pid: int | None = None
        if cfg.url is None:
            db: Path | None = Path(tmp) / "soak.sqlite3"
            env = {**extra, "MEMENTO_DB_PATH": str(db)}
            log = (cfg.out_dir or Path(tmp)) / "server.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            server = ServerProcess(env, log=log)
            server.start(timeout_s=cfg.start_timeout_s)
            assert server.proc is not None, "server not started"
            url, pid = server.url, server.proc.pid
        else:
            url, db = cfg.url.rstrip("/"), cfg.db_path
            pid = cfg.pid if cfg.pid is not None else pid_of_port(url)
        if pid is None:
            notes.append("service process unknown (pass --pid): no memory samples")
        try:
            clients, sampler, seconds, drain_s = _traffic(cfg, url, pid, keys, run)
            ledger = Ledger()
            for c in clients:
                ledger.merge(c.ledger)
            store = check_store(db, ledger, f"soak-{run}-") if db is not None else None
        finally:
            if server is not None:
                server.stop()
        if store is None:
            notes.append("no store given (pass --db): exactly-once not checked")
    calls = [call for c in clients for call in c.calls]
    routes = route_stats(calls, cfg.window_s)
    during = [s for s in sampler.samples if s.t <= seconds + 1e-6]
    half = [s for s in during if s.t >= seconds / 2 and s.rss_mb is not None]
    slope = slope_per_minute([s.t for s in half], [s.rss_mb or 0.0 for s in half])
    floors = [s for s in half if s.rss_floor_mb is not None]
    floor_slope = slope_per_minute([s.t for s in floors], [s.rss_floor_mb or 0.0 for s in floors])
    rss = [s.rss_mb for s in during if s.rss_mb is not None]
    fb = routes.get("feedback")
    accepted = fb.statuses.get("202", 0) if fb else 0
    refused = fb.statuses.get("503", 0) if fb else 0
    result = SoakResult(
        url=url,
        minutes=cfg.minutes,
        concurrency=cfg.concurrency,
        seconds=round(seconds, 1),
        loops=sum(c.loops for c in clients),
        routes=routes,
        five_xx=sum(1 for c in calls if c.status >= 500),
        five_xx_not_503=sum(1 for c in calls if c.status >= 500 and c.status != 503),
        transport_errors=sum(1 for c in calls if c.status == 0),
        feedback_accepted=accepted,
        feedback_refused=refused,
        share_503_feedback=round(refused / max(1, accepted + refused), 4),
        learner=learner_stats(during, seconds, drain_s),
        rss_mb_start=rss[0] if rss else None,
        rss_mb_end=rss[-1] if rss else None,
        rss_slope_mb_per_min_second_half=slope,
        rss_floor_slope_mb_per_min_second_half=floor_slope,
        samples=sampler.samples,
        store=store,
        notes=notes,
    )
    if cfg.out_dir is None:
        return result
    title = f"soak: {cfg.concurrency} clients, {cfg.minutes:g} min, {url}"
    png = plot_soak(routes, sampler.samples, cfg.out_dir / "soak.png", title)
    result = replace(result, plot=str(png))
    (cfg.out_dir / "soak.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result
