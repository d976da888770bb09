"""One run's metrics rows read as a learning curve: its evaluations in step order, the first
step at a threshold, the CPU spent learning until then, and the per-seed entry the benchmarks
write (benchmarks/sample_efficiency.py and benchmarks/mujoco_tasks.py)."""

from __future__ import annotations

import numpy as np

from forethought.sweep.execute import last_step_mean


def measure(
    rows: list[dict], seconds: float, seed: int, steps: int, threshold: float, stops: bool = False
) -> dict:
    """One run's metrics rows reduced to the benchmark's per-seed entry (`stops`: the run was
    told to end at the threshold)."""
    x, y = curve(rows)
    actor_x, actor_y = curve(rows, "eval_actor_return")  # --algo loop runs only
    actor = {"curve_actor_returns": actor_y.tolist()} if len(actor_x) == len(x) > 0 else {}
    return {
        "seed": seed,
        "stopped_at_threshold": bool(stops and len(y) and y[-1] >= threshold),
        "budget": steps,
        "seconds": seconds,  # the run's last attempt (a resumed run: the part after the kill)
        "cpu_seconds": run_cpu_seconds(rows),
        "curve_steps": x.tolist(),
        "curve_returns": y.tolist(),
        "steps_to_threshold": steps_to_threshold(x, y, threshold),
        "learning_cpu_seconds_to_threshold": learning_cpu_seconds_to_threshold(rows, threshold),
        "final_eval_return": last_step_mean(
            x.tolist(), y.tolist()
        ),  # stopped_at_threshold: the threshold's row
        "eval_return_at_1000": value_at(x, y, 1000),
    } | actor


def run_cpu_seconds(rows: list[dict]) -> float | None:
    """The CPU time of the whole run, all attempts together (the run directory's stamp on its
    last row; None for runs written before the stamp existed)."""
    stamps = [r["cpu_seconds"] for r in rows if "cpu_seconds" in r]
    return stamps[-1] if stamps else None


def learning_cpu_seconds_to_threshold(rows: list[dict], threshold: float) -> float | None:
    """The CPU time the agent spent learning (acting, fitting, planning) until its first
    evaluation at the threshold: the run's CPU stamp on that row less every evaluation's own
    CPU time up to it. None when the threshold was never reached, or for runs that do not record
    their evaluations' CPU time (model-free runs, and planner runs written before it was)."""
    evaluating = 0.0
    for row in rows:
        if row.get("eval_return") is None or row.get("event") not in (None, "evaluation"):
            continue
        if row.get("eval_cpu_seconds") is None or row.get("cpu_seconds") is None:
            return None
        evaluating += row["eval_cpu_seconds"]
        if row["eval_return"] >= threshold:
            return round(row["cpu_seconds"] - evaluating, 3)
    return None


def curve(rows: list[dict], key: str = "eval_return") -> tuple[np.ndarray, np.ndarray]:
    """Evaluations in step order, those at one step in the order they were recorded (`key`:
    eval_actor_return for a loop run's actor alone)."""
    evals = sorted(
        (
            (r["env_steps"], r[key])
            for r in rows
            if r.get(key) is not None and r.get("event") in (None, "evaluation")
        ),
        key=lambda e: e[0],  # never by return: at one step that would put the best one last
    )
    return np.array([s for s, _ in evals]), np.array([v for _, v in evals])


def steps_to_threshold(steps: np.ndarray, returns: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(returns >= threshold)
    return int(steps[hit[0]]) if len(hit) else None


def value_at(steps: np.ndarray, returns: np.ndarray, at: float) -> float | None:
    """The evaluation in effect at `at` env steps (the latest one at or before it)."""
    before = np.flatnonzero(steps <= at)
    return float(returns[before[-1]]) if len(before) else None


def on_grid(seed_entry: dict, grid: np.ndarray) -> np.ndarray:
    """One run's curve as a step function sampled at `grid` (NaN before its first evaluation,
    and after its last one when the run stopped at the threshold)."""
    steps, returns = np.array(seed_entry["curve_steps"]), np.array(seed_entry["curve_returns"])
    end = steps[-1] if seed_entry.get("stopped_at_threshold") else np.inf
    return np.array([value_at(steps, returns, g) if steps[0] <= g <= end else np.nan for g in grid])
