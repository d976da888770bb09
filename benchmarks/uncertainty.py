"""Uncertainty, drift and retraining, measured on Pendulum-v1 (issue: uncertainty, compounding
error and retraining on drift). Writes benchmarks/results/uncertainty.json after every seed.

1. Drift. At step DRIFT.at_step (mid-episode) the actuator is reversed: every action is multiplied
   by -1 before the pendulum sees it. The task stays exactly as hard (the mirrored policy is as
   good), so the pre-drift evaluation return is reachable again; only the learned dynamics are
   wrong. (Halving the mass, tried first, made the task easier: returns rose with a stale model,
   so it could not show recovery.) Three runs per seed, the same length:
   - "no drift, monitor on": every alarm is a false alarm;
   - "triggered": the monitor with forgetting (refit on the data since the estimated change,
     mid-episode) on top of the per-episode refits;
   - "per episode": the fixed schedule only (refit on all data after every episode).
   Evaluations after every episode on fixed seeds, in the current dynamics, give the steps
   needed after the drift to get back within RECOVERY_TOLERANCE of the last pre-drift evaluation.
2. Pessimism. Runs with and without an epistemic penalty (PENALTIES): the disagreement along
   the executed plans (median per episode; and in the first MPC episode, planned with a model of
   random data only), and the final evaluation return.

    python benchmarks/uncertainty.py            # full: 3 seeds (about an hour on 2 cores)
    python benchmarks/uncertainty.py --quick    # 1 seed, short runs (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from forethought.config import MonitorConfig, TrainConfig
from forethought.rollout import RolloutConfig
from forethought.tasks.drift import DriftConfig
from machine import machine_info
from sample_efficiency import run_once

RESULTS = Path(__file__).parent / "results" / "uncertainty.json"
RUNS = Path(__file__).parent / ".runs" / "uncertainty"  # kept: a killed benchmark picks up again
# Mid-episode 3: the model is good from the second episode on (evaluation about -90 at step 200).
DRIFT = DriftConfig(at_step=500, parameter="action", scale=-1.0)
QUICK_DRIFT = DriftConfig(at_step=300, parameter="action", scale=-1.0)
RECOVERY_TOLERANCE = 0.10  # recovered once within 10% of the pre-drift evaluation return
# Epistemic penalties (per unit of summed disagreement along an imagined trajectory).
PENALTIES = {"neutral": 0.0, "pessimistic": 1.0, "pessimistic_strong": 5.0}


def run(name: str, workdir: Path, **settings) -> list[dict]:
    """One Pendulum-v1 run kept under `workdir`: a finished run is reused, a killed one resumed."""
    steps = settings["episodes"] * 200  # Pendulum-v1's time limit; lets run_once see it is done
    config = TrainConfig(
        env="Pendulum-v1", planner="icem", out=workdir / name, quiet=True, steps=steps, **settings
    )
    history, seconds = run_once(config)
    print(f"  {name}: {seconds:.0f} s", flush=True)
    return history


def drift_summary(history: list[dict], drift_step: int) -> dict:
    alarms = [e["step"] for e in history if e.get("event") == "model_drift"]
    evals = sorted(
        ((r["env_steps"], r["eval_return"]) for r in history if r.get("eval_return") is not None),
        key=lambda x: x[0],
    )
    before = [ret for step, ret in evals if step < drift_step]  # at drift_step it has changed
    pre = before[-1] if before else None
    recovered_at = None
    if pre is not None:
        for step, ret in evals:
            if step > drift_step and ret >= pre - RECOVERY_TOLERANCE * abs(pre):
                recovered_at = step
                break
    first_after = next((s for s in alarms if s > drift_step), None)
    refits = [e["step"] for e in history if e.get("event") == "refit_after_forgetting"]
    return {
        "alarms": alarms,
        "false_alarms": sum(s <= drift_step for s in alarms),
        "detection_delay": None if first_after is None else first_after - drift_step,
        "pre_drift_eval_return": pre,
        "recovered_at_step": recovered_at,
        "steps_to_recover": None if recovered_at is None else recovered_at - drift_step,
        "forgot_before": [e["forgot_before"] for e in history if "forgot_before" in e],
        "refits_after_forgetting": refits,
        "evaluations": evals,
    }


def drift_runs(seed: int, workdir: Path, drift: DriftConfig, episodes: int, evals: int) -> dict:
    monitor = MonitorConfig(enabled=True, forget=True)
    common = dict(seed=seed, episodes=episodes, eval_episodes=evals)
    # An evaluation after every episode, after that episode's refit (so the per-episode schedule
    # is scored with the model it just fitted). Each plans 3 episodes at once: 3x an episode's
    # compute, so there are no evaluations in between.
    scheduled_evals = dict(drift=drift, eval_every=1, **common)
    triggered = run(f"triggered-{seed}", workdir, monitor=monitor, **scheduled_evals)
    scheduled = run(f"scheduled-{seed}", workdir, **scheduled_evals)
    return {
        "triggered": drift_summary(triggered, drift.at_step),
        "per_episode": drift_summary(scheduled, drift.at_step),
    }


def pessimism_runs(seed: int, workdir: Path, episodes: int, evals: int) -> dict:
    """Neutral and pessimistic planning without drift, both with the monitor on: the neutral run
    doubles as the false-alarm count (the monitor only watches unless it fires)."""
    out = {}
    for label, penalty in PENALTIES.items():
        history = run(
            f"{label}-{seed}",
            workdir,
            episodes=episodes,
            eval_episodes=evals,
            eval_every=episodes,  # one evaluation, at the end
            seed=seed,
            monitor=MonitorConfig(enabled=True, forget=True),
            rollout=RolloutConfig(uncertainty_penalty=penalty),
        )
        rows = [r for r in history if "event" not in r and r["plan_disagreement"] is not None]
        out[label] = {
            "penalty": penalty,
            "false_alarms": sum(e.get("event") == "model_drift" for e in history),
            "steps": episodes * 200,
            "median_plan_disagreement": statistics.median(r["plan_disagreement"] for r in rows),
            # The first MPC episode plans with a model of random data only: where unvisited
            # regions are largest, and where a penalty can steer away from them.
            "first_mpc_episode_plan_disagreement": rows[0]["plan_disagreement"],
            "final_eval_return": rows[-1]["eval_return"],
            "final_eval_returns": rows[-1]["eval_returns"],
            "per_episode_plan_disagreement": [r["plan_disagreement"] for r in rows],
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one seed, short runs (smoke test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS})")
    parser.add_argument(
        "--runs", type=Path, default=RUNS, help=f"where the runs live (default {RUNS})"
    )
    args = parser.parse_args()
    out = args.out or (args.runs / "quick.json" if args.quick else RESULTS)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    drift = QUICK_DRIFT if args.quick else DRIFT
    episodes = 3 if args.quick else 7
    evals = 2 if args.quick else 3
    pessimism_episodes, pessimism_evals = (3, 2) if args.quick else (episodes, 5)
    workdir = args.runs / ("quick" if args.quick else "full")
    results: dict = {"machine": machine_info(), "quick": args.quick, "seeds": seeds}
    results["settings"] = {
        "drift": drift.__dict__, "monitor": MonitorConfig(enabled=True, forget=True).__dict__,
        "episodes": episodes, "eval_every_episodes": 1, "eval_episodes": evals,
        "pessimism_episodes": pessimism_episodes, "pessimism_eval_episodes": pessimism_evals,
        "penalties": PENALTIES, "recovery_tolerance": RECOVERY_TOLERANCE,
    }  # fmt: skip
    results["drift"], results["pessimism"] = {}, {}
    for seed in seeds:
        print(f"seed {seed}", flush=True)
        results["pessimism"][seed] = pessimism_runs(
            seed, workdir, pessimism_episodes, pessimism_evals
        )
        results["drift"][seed] = drift_runs(seed, workdir, drift, episodes, evals)
        neutral = results["pessimism"][seed]["neutral"]  # the same length, without a change
        results["drift"][seed]["no_drift_false_alarms"] = neutral["false_alarms"]
        results["drift"][seed]["no_drift_steps"] = neutral["steps"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))  # after every seed: nothing lost
    brief = {
        seed: {
            key: (
                {k: v for k, v in value.items() if k != "evaluations"}
                if isinstance(value, dict)
                else value
            )
            for key, value in d.items()
        }
        for seed, d in results["drift"].items()
    }
    print(json.dumps(brief, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
