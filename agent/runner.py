"""Run one task end to end on the shared core.

retrieve cases -> planner -> executor(s) -> (re-plan, up to `max_cycles`) -> answer -> judge ->
per-case credit -> transition to the learner -> case written.

`attempt` solves and judges without touching memory (safe to run concurrently against one
memory snapshot); `learn` then sends the transition and writes the case. The learning step is
bandit-like (see `agent.memory`): state = task embedding, candidates = the retrieved-case
snapshot, chosen = the policy's cases, rewards = the judged reward split by `agent.credit`
(followed cases get it, the others a share), `done=True`. The case of this task is written after
the transition, so a task never retrieves itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agent.credit import case_rewards, followed_cases
from agent.executor import Executor, StepResult, summarize
from agent.judge import JudgeResult, LLMJudge
from agent.memory import AgentMemory, agent_payload
from agent.plan import Plan, PlanRequest
from agent.planner import Planner, Retrieval
from agent.scorers import score_answer
from agent.tasks import Task

__all__ = ["AgentRunner", "Attempt", "RunnerConfig", "TaskRecord"]


@dataclass(frozen=True)
class RunnerConfig:
    """End-to-end limits."""

    max_cycles: int = 2
    """Planning cycles (plan, execute, re-plan) per task."""
    max_steps_per_plan: int = 3
    """Plan steps executed per cycle (extra steps are dropped)."""
    learn: bool = True
    """Send transitions to the learner and write cases."""
    scorer: Literal["hotpotqa", "gaia", "simpleqa", "deepresearcher"] = "hotpotqa"
    """How `em` and the reward are scored: HotpotQA EM/F1 (reward = F1), GAIA's quasi-exact
    match (reward = 1 / 0), SimpleQA's LLM-judged label (reward = 1 iff CORRECT), or
    DeepResearcher's F1 with the judged partial match (PM) as the label."""
    attachment_chars: int = 1500
    """Characters of each attachment's extract shown to the planner and the executor."""
    files_root: Path | None = None
    """The tool server's `read_file` folder: attachment names are shown relative to it."""


@dataclass
class TaskRecord:
    """Everything logged for one task (JSON-able via `to_json`)."""

    task_id: str
    question: str
    gold: str
    answer: str
    em: float
    f1: float
    reward: float
    retrieved_ids: list[int]
    chosen_ids: list[int]
    case_id: int | None
    plans: list[dict[str, Any]]
    plan_attempts: list[int]
    plan_fallbacks: int
    steps: list[dict[str, Any]]
    trajectory_summary: str
    learner_metrics: dict[str, float]
    duration_s: float
    payload: dict[str, Any] = field(default_factory=dict)
    planner_calls: list[dict[str, Any]] = field(default_factory=list)
    """Every planning request: raw replies, parse errors, attempts, fallback."""
    followed: list[bool] = field(default_factory=list)
    """Per chosen case: whether the plans followed it."""
    case_rewards: list[float] = field(default_factory=list)
    """Per chosen case: the reward it was credited with."""
    policy_entropy: float | None = None
    """Entropy (nats) of the case policy over the retrieved cases (None: nothing retrieved)."""
    judge_label: str | None = None
    """The LLM judge's label (SimpleQA)."""
    attachments: list[str] = field(default_factory=list)
    """File names of the task's attachments."""
    sample: int = 0
    """Which independent attempt at the task this is (pass@k runs several)."""
    chosen_cases: list[dict[str, Any]] = field(default_factory=list)
    """The chosen cases as the planner saw them: id, task, outcome, reward (audits)."""

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return dict(self.__dict__)


@dataclass
class Attempt:
    """One solved and judged attempt, before learning."""

    task: Task
    retrieval: Retrieval
    answer: str
    plans: list[Plan]
    requests: list[PlanRequest]
    results: list[StepResult]
    judged: JudgeResult
    duration_s: float


def _step_json(r: StepResult) -> dict[str, Any]:
    return {
        "id": r.step_id,
        "goal": r.goal,
        "answer": r.answer,
        "result": r.result,
        "turns": r.turns,
        "tool_calls": r.tool_calls,
        "tokens": r.tokens,
        "stop": r.stop,
        "trajectory": r.trajectory,
    }


def _request_json(req: PlanRequest) -> dict[str, Any]:
    return {
        "attempts": req.attempts,
        "fallback": req.fallback,
        "parse_errors": list(req.errors),
        "replies": list(req.raw),
        "tokens": req.tokens,
        "plan": req.plan.to_json(),
    }


def attachments_text(task: Task, chars: int, root: Path | None = None) -> str:
    """The task's attachment block for the prompts ('' without attachments)."""
    if not task.attachments:
        return ""
    from agent.attachments import describe_attachments

    return describe_attachments(task.attachments, extract_chars=chars, root=root)


class AgentRunner:
    """Planner + executor + memory + judge for one task at a time."""

    def __init__(
        self,
        planner: Planner,
        executor: Executor,
        memory: AgentMemory,
        cfg: RunnerConfig = RunnerConfig(),
        llm_judge: LLMJudge | None = None,
    ) -> None:
        self.planner = planner
        self.executor = executor
        self.memory = memory
        self.cfg = cfg
        self.llm_judge = llm_judge

    def solve(self, question: str, attachments: str = "") -> tuple[str, dict[str, Any]]:
        """Plan and execute without judging or learning; returns (answer, details)."""
        retrieval = self.planner.retrieve(question)
        answer, requests, results = self._loop(question, retrieval, attachments)
        return answer, {
            "retrieval": retrieval,
            "plans": [r.plan for r in requests],
            "plan_attempts": [r.attempts for r in requests],
            "plan_fallbacks": sum(int(r.fallback) for r in requests),
            "planner_calls": [_request_json(r) for r in requests],
            "results": results,
        }

    def _loop(
        self, question: str, retrieval: Retrieval, attachments: str
    ) -> tuple[str, list[PlanRequest], list[StepResult]]:
        results: list[StepResult] = []
        requests: list[PlanRequest] = []
        answer: str | None = None
        for _cycle in range(self.cfg.max_cycles):
            req = self.planner.plan(
                question, retrieval, [_result_line(r) for r in results], attachments
            )
            requests.append(req)
            if req.plan.final_answer:
                answer = req.plan.final_answer
                break
            if not req.plan.steps:
                break
            for step in req.plan.steps[: self.cfg.max_steps_per_plan]:
                context = [_result_line(r) for r in results]
                results.append(self.executor.run_step(question, step, context, attachments))
        if answer is None:
            answered = [r.answer for r in results if r.answer]
            answer = answered[-1] if answered else ""
        return answer, requests, results

    def attempt(self, task: Task) -> Attempt:
        """Solve and judge one task; memory is read, never written."""
        t0 = time.perf_counter()
        retrieval = self.planner.retrieve(task.question)
        shown = attachments_text(task, self.cfg.attachment_chars, self.cfg.files_root)
        answer, requests, results = self._loop(task.question, retrieval, shown)
        golds: Sequence[str] = task.metadata.get("answers") or [task.answer]
        judged = score_answer(answer, golds, task.question, self.llm_judge, self.cfg.scorer)
        plans = [r.plan for r in requests]
        return Attempt(
            task, retrieval, answer, plans, requests, results, judged, time.perf_counter() - t0
        )

    def learn(self, att: Attempt, sample: int = 0) -> TaskRecord:
        """Credit the chosen cases, update the learner, write the case (when `cfg.learn`);
        returns the full record."""
        retrieval, judged = att.retrieval, att.judged
        summary = summarize(att.results)
        plan_goals = [s.goal for p in att.plans for s in p.steps]
        payload = agent_payload(
            att.task.question,
            plan_goals,
            att.answer,
            judged.reward,
            summary,
            self.memory.cfg.success_threshold,
        )
        followed = followed_cases(att.plans, retrieval.cases, att.task.question)
        rewards = case_rewards(judged.reward, followed, self.memory.cfg.credit_beta)
        metrics: dict[str, float] = {}
        case_id = None
        if self.cfg.learn:
            if retrieval.choice is not None:
                metrics = self.memory.observe(
                    retrieval.state, retrieval.cands, retrieval.choice, rewards
                )
            case_id = self.memory.write(retrieval.state, payload)
        choice = retrieval.choice
        return TaskRecord(
            task_id=att.task.task_id,
            question=att.task.question,
            gold=att.task.answer,
            answer=att.answer,
            em=judged.em,
            f1=judged.f1,
            reward=judged.reward,
            retrieved_ids=retrieval.retrieved_ids,
            chosen_ids=retrieval.chosen_ids,
            case_id=case_id,
            plans=[p.to_json() for p in att.plans],
            plan_attempts=[r.attempts for r in att.requests],
            plan_fallbacks=sum(int(r.fallback) for r in att.requests),
            steps=[_step_json(r) for r in att.results],
            trajectory_summary=summary,
            learner_metrics=metrics,
            duration_s=att.duration_s,
            payload=payload,
            planner_calls=[_request_json(r) for r in att.requests],
            followed=followed,
            case_rewards=[float(x) for x in np.asarray(rewards)],
            policy_entropy=None if choice is None else self.memory.policy_entropy(choice),
            judge_label=judged.label,
            attachments=[a.name for a in att.task.attachments],
            sample=sample,
            chosen_cases=[
                {
                    "id": c.case_id,
                    "task": c.payload.get("task"),
                    "outcome": c.payload.get("outcome"),
                    "reward": c.reward,
                }
                for c in retrieval.cases
            ],
        )

    def run_task(self, task: Task) -> TaskRecord:
        """Solve, judge, learn, and write the case."""
        return self.learn(self.attempt(task))


def _result_line(r: StepResult) -> str:
    return f"{r.goal}: {r.answer or r.result or '(no answer)'}"
