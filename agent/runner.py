"""Run one task end to end on the shared core.

retrieve cases -> planner -> executor(s) -> (re-plan, up to `max_cycles`) -> answer -> judge ->
reward -> transition to the learner -> case written.

The learning step is bandit-like (see `agent.memory`): state = task embedding,
candidates = the retrieved-case snapshot, chosen = the policy's cases, reward = the judged
reward credited to every chosen case, `done=True`. The case of this task is written after the
transition, so a task never retrieves itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.bench_data import Task
from agent.executor import Executor, StepResult, summarize
from agent.judge import LLMJudge
from agent.memory import AgentMemory, agent_payload
from agent.plan import Plan
from agent.planner import Planner
from agent.scorers import score_answer

__all__ = ["AgentRunner", "RunnerConfig", "TaskRecord"]


@dataclass(frozen=True)
class RunnerConfig:
    """End-to-end limits."""

    max_cycles: int = 2
    """Planning cycles (plan, execute, re-plan) per task."""
    max_steps_per_plan: int = 3
    """Plan steps executed per cycle (extra steps are dropped)."""
    learn: bool = True
    """Send transitions to the learner and write cases."""
    scorer: Literal["hotpotqa", "gaia"] = "hotpotqa"
    """How `em` (and, without an LLM judge, the reward) is scored: HotpotQA EM/F1 (reward =
    F1), or GAIA's quasi-exact match (reward = 1 / 0)."""


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

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return dict(self.__dict__)


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

    def solve(self, question: str) -> tuple[str, dict[str, Any]]:
        """Plan and execute without judging or learning; returns (answer, details)."""
        retrieval = self.planner.retrieve(question)
        answer, plans, attempts, fallbacks, results = self._loop(question, retrieval)
        return answer, {
            "retrieval": retrieval,
            "plans": plans,
            "plan_attempts": attempts,
            "plan_fallbacks": fallbacks,
            "results": results,
        }

    def _loop(
        self, question: str, retrieval: Any
    ) -> tuple[str, list[Plan], list[int], int, list[StepResult]]:
        results: list[StepResult] = []
        plans: list[Plan] = []
        attempts: list[int] = []
        fallbacks = 0
        answer: str | None = None
        for _cycle in range(self.cfg.max_cycles):
            req = self.planner.plan(question, retrieval, [_result_line(r) for r in results])
            plans.append(req.plan)
            attempts.append(req.attempts)
            fallbacks += int(req.fallback)
            if req.plan.final_answer:
                answer = req.plan.final_answer
                break
            if not req.plan.steps:
                break
            for step in req.plan.steps[: self.cfg.max_steps_per_plan]:
                context = [_result_line(r) for r in results]
                results.append(self.executor.run_step(question, step, context))
        if answer is None:
            answered = [r.answer for r in results if r.answer]
            answer = answered[-1] if answered else ""
        return answer, plans, attempts, fallbacks, results

    def run_task(self, task: Task) -> TaskRecord:
        """Solve, judge, learn, and write the case."""
        t0 = time.perf_counter()
        retrieval = self.planner.retrieve(task.question)
        answer, plans, attempts, fallbacks, results = self._loop(task.question, retrieval)
        golds: Sequence[str] = task.metadata.get("answers") or [task.answer]
        judged = score_answer(answer, golds, task.question, self.llm_judge, self.cfg.scorer)
        metrics: dict[str, float] = {}
        case_id = None
        summary = summarize(results)
        plan_goals = [s.goal for p in plans for s in p.steps]
        payload = agent_payload(
            task.question,
            plan_goals,
            answer,
            judged.reward,
            summary,
            self.memory.cfg.success_threshold,
        )
        if self.cfg.learn:
            if retrieval.choice is not None:
                metrics = self.memory.observe(
                    retrieval.state, retrieval.cands, retrieval.choice, judged.reward
                )
            case_id = self.memory.write(retrieval.state, payload)
        return TaskRecord(
            task_id=task.task_id,
            question=task.question,
            gold=task.answer,
            answer=answer,
            em=judged.em,
            f1=judged.f1,
            reward=judged.reward,
            retrieved_ids=retrieval.retrieved_ids,
            chosen_ids=retrieval.chosen_ids,
            case_id=case_id,
            plans=[p.to_json() for p in plans],
            plan_attempts=attempts,
            plan_fallbacks=fallbacks,
            steps=[_step_json(r) for r in results],
            trajectory_summary=summary,
            learner_metrics=metrics,
            duration_s=time.perf_counter() - t0,
            payload=payload,
        )


def _result_line(r: StepResult) -> str:
    return f"{r.goal}: {r.answer or r.result or '(no answer)'}"
