"""The replica benchmark's targets, N-machine projection and printed table
(`bench.service.replicas` measures; this module turns the figures into what is reported)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ASSUMPTIONS",
    "LEARNER_TARGET",
    "P50_TARGET",
    "THROUGHPUT_TARGET",
    "Projection",
    "format_table",
    "interleaved_ratios",
    "project_throughput",
    "targets",
]

P50_TARGET = 1.5
"""Ray Serve 1 replica p50 <= this x the plain service's p50 (one request in flight)."""
THROUGHPUT_TARGET = 1.6
"""2 replicas >= this x the throughput of 1 replica (`--concurrency` in flight)."""
LEARNER_TARGET = 200.0
"""The shared learner applies >= this many feedback per second (drained from a backlog)."""
ASSUMPTIONS = (
    "serving is CPU-bound: per-machine capacity = machine_cores / cpu_s_per_request, with "
    "cpu_s_per_request = CPU seconds of every serving process (Ray: replicas, proxy, controller, "
    "learner, raylet/GCS) during the 2-replica saturation phase / requests completed",
    "one replica per core, linear in machines: the Serve proxy runs on every machine, the load "
    "balancer in front and PostgreSQL (on its own machine) are not the bottleneck",
    "the learner is ONE actor on one core whatever N: recommend req/s is capped at "
    "learner_feedback_per_s / feedback_per_request",
    "learner_feedback_per_s = the rate the learner actor drained a backlog at, from its own "
    "counter, on this machine beside the 2 replicas (else the rate while it kept up with posts)",
    "no LLM ranking; same catalogue, bank size and request mix as the measured run",
)


@dataclass(frozen=True)
class Projection:
    """Projected recommend throughput of N machines."""

    machines: int
    """Number of serving machines."""
    cpu_capacity_per_s: float
    """N x per-machine capacity (CPU-bound)."""
    learner_cap_per_s: float
    """Recommendations per second whose feedback the one learner can apply."""
    projected_per_s: float
    """min(cpu capacity, learner cap)."""
    bound: str
    """Which limit binds: cpu or learner."""


def project_throughput(
    cpu_s_per_request: float,
    machine_cores: int,
    learner_feedback_per_s: float,
    feedback_per_request: float,
    machines: tuple[int, ...] = (1, 2, 4, 8),
) -> list[Projection]:
    """req/s for each N: min(N x machine_cores / cpu_s_per_request, learner rate / feedback
    per request); a learner rate of 0 or a feedback ratio of 0 means no cap."""
    assert cpu_s_per_request > 0 and machine_cores > 0, f"{cpu_s_per_request=} {machine_cores=}"
    assert learner_feedback_per_s >= 0 and feedback_per_request >= 0
    per_machine = machine_cores / cpu_s_per_request
    cap = (
        learner_feedback_per_s / feedback_per_request
        if learner_feedback_per_s > 0 and feedback_per_request > 0
        else float("inf")
    )
    out = []
    for n in machines:
        cpu = n * per_machine
        out.append(
            Projection(
                n,
                round(cpu, 1),
                round(cap, 1),
                round(min(cpu, cap), 1),
                "cpu" if cpu <= cap else "learner",
            )
        )
    return out


def targets(
    plain: dict[str, Any],
    plain_pg: dict[str, Any],
    one: dict[str, Any],
    two: dict[str, Any],
    concurrency: int,
    learner_per_s: float,
    interleaved: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The done-when ratios, same run: one replica's p50 at 1 in flight over the plain
    service's, 2 replicas' req/s over 1 replica's, at the replicas' own ports (`direct`, the
    path a load balancer in front takes) and through Serve's proxy (with `interleaved`,
    `interleaved_ratios`' p50 ratio over plain SQLite too); the learner's rate."""
    conc = f"recommend_{concurrency}_in_flight"

    def p50(v: dict[str, Any]) -> float:
        return float(v["recommend_1_in_flight"]["p50_ms"])

    out: dict[str, Any] = {
        "replica1_p50_target_max": P50_TARGET,
        "replicas2_throughput_target_min": THROUGHPUT_TARGET,
        "learner_target_min_per_s": LEARNER_TARGET,
        "learner_applied_per_s": learner_per_s,
        "learner_met": learner_per_s >= LEARNER_TARGET,
    }
    for path in ("direct", "proxy"):
        if path not in one or path not in two:
            continue
        ratio = p50(one[path]) / p50(plain)
        tput = (
            two[path][conc]["per_s"] / one[path][conc]["per_s"] if one[path][conc]["per_s"] else 0.0
        )
        out[path] = {
            "replica1_p50_over_plain_p50": round(ratio, 2),
            "replica1_p50_over_plain_pg_p50": round(p50(one[path]) / p50(plain_pg), 2),
            "replica1_p50_met": ratio <= P50_TARGET,
            "replicas2_over_replicas1_throughput": round(tput, 2),
            "replicas2_throughput_met": tput >= THROUGHPUT_TARGET,
        }
        turns = (interleaved or {}).get(f"{path}_over_plain_sqlite")
        if turns is not None:
            out[path]["replica1_p50_interleaved_over_plain_p50"] = turns
            out[path]["replica1_p50_interleaved_met"] = turns <= P50_TARGET
    return out


def interleaved_ratios(one: dict[str, Any]) -> dict[str, float]:
    """1 replica's interleaved p50s over each plain service's (`direct_over_plain_sqlite`, ...;
    directly comparable: the same minutes of the shared machine)."""
    turns = one.get("interleaved_1_in_flight", {})
    bases = {k: v["p50_ms"] for k, v in turns.items() if k.startswith("plain") and v["p50_ms"]}
    return {
        f"{k}_over_{b}": round(v["p50_ms"] / base, 2)
        for k, v in turns.items()
        for b, base in bases.items()
        if k != b
    }


def _variants(r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, figures) of every measured variant, in table order."""
    out = [
        ("plain uvicorn sqlite", r["plain_uvicorn_sqlite"]),
        ("plain uvicorn postgres", r["plain_uvicorn_pg"]),
    ]
    for n, key in ((1, "ray_serve_1_replica_pg"), (2, "ray_serve_2_replicas_pg")):
        for path in ("direct", "proxy"):
            if path in r[key]:
                out.append((f"ray {n} replica{'s' if n > 1 else ''} {path}", r[key][path]))
    return out


def format_table(r: dict[str, Any]) -> str:
    """The figures of `run_replicas_bench` as a readable table."""
    c = r["config"]["load"]["concurrency"]
    lines = [
        f"{'variant':<24}{'p50@1':>9}{'p99@1':>9}{'req/s@' + str(c):>11}{'p50@' + str(c):>9}"
        f"{'p99@' + str(c):>9}{'errors':>8}{'cpu_s/req':>11}{'cores':>7}"
    ]
    for name, v in _variants(r):
        a, b = v["recommend_1_in_flight"], v[f"recommend_{c}_in_flight"]
        lines.append(
            f"{name:<24}{a['p50_ms']:>9.2f}{a['p99_ms']:>9.2f}{b['per_s']:>11.1f}"
            f"{b['p50_ms']:>9.2f}{b['p99_ms']:>9.2f}{a['errors'] + b['errors']:>8}"
            f"{v['cpu_s_per_request'] or float('nan'):>11.4f}{v['cores_used']:>7.2f}"
        )
        if "cpu_ms_per_request_by_role" in v:
            lines.append(f"{'':<24}CPU ms/request by role: {v['cpu_ms_per_request_by_role']}")
    t, p = r["targets"], r["projection"]
    for path in ("direct", "proxy"):
        if path not in t:
            continue
        x = t[path]
        lines += [
            f"{path}: replica1 p50 / plain p50 = {x['replica1_p50_over_plain_p50']} (target <= "
            f"{P50_TARGET}: {'met' if x['replica1_p50_met'] else 'NOT met'}); over the plain "
            f"process on PostgreSQL = {x['replica1_p50_over_plain_pg_p50']}",
            f"{path}: interleaved rounds (same minutes): replica1 p50 / plain p50 = "
            f"{x.get('replica1_p50_interleaved_over_plain_p50')} ("
            f"{'met' if x.get('replica1_p50_interleaved_met') else 'NOT met'})",
            f"{path}: replicas2 / replicas1 req/s = {x['replicas2_over_replicas1_throughput']} "
            f"(target >= {THROUGHPUT_TARGET}: "
            f"{'met' if x['replicas2_throughput_met'] else 'NOT met'})",
        ]
    if r.get("interleaved_1_in_flight_p50_over_plain"):
        lines.append(f"interleaved p50 ratios: {r['interleaved_1_in_flight_p50_over_plain']}")
    lines += [
        f"learner applied/s = {t['learner_applied_per_s']} (target >= {LEARNER_TARGET}: "
        f"{'met' if t['learner_met'] else 'NOT met'})",
        f"learner: {json.dumps(r['ray_serve_2_replicas_pg']['learner'])}",
        f"projection ({p['machine_cores']} cores/machine, {p['cpu_s_per_request']} cpu_s/req, "
        f"learner {p['learner_feedback_per_s']} feedback/s, {p['feedback_per_request']} "
        "feedback/request):",
        *(
            f"  N={row['machines']}: {row['projected_per_s']} req/s ({row['bound']}-bound; cpu "
            f"{row['cpu_capacity_per_s']}, learner cap {row['learner_cap_per_s']})"
            for row in p["rows"]
        ),
        f"load average start {r['load_average_start_1_5_15']} end {r['load_average_end_1_5_15']}",
    ]
    return "\n".join(lines)
