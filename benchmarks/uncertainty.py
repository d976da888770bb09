"""Uncertainty, drift and retraining, measured on Pendulum-v1 (issue: uncertainty, compounding
error and retraining on drift). Writes benchmarks/results/uncertainty.json.

1. Drift. The pendulum's mass is halved at step DRIFT_STEP (mid-episode). Three runs per seed:
   - "no drift, monitor on": every alarm is a false alarm;
   - "drift, monitor on": alarms and mid-episode refits; detection delay = first alarm - drift;
   - "drift, per-episode refits": the fixed schedule only.
   Evaluations every EVAL_EVERY steps give the steps needed after the drift to get back to the
   pre-drift evaluation return (within RECOVERY_TOLERANCE).
2. Pessimism. Runs with and without an epistemic penalty: the median disagreement along the
   executed plans, and the final evaluation return.

    python benchmarks/uncertainty.py            # full: 3 seeds (about an hour on 2 cores)
    python benchmarks/uncertainty.py --quick    # 1 seed, short runs (a smoke test, ~5 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from forethought.config import TrainConfig
from forethought.loop import train
from forethought.monitor import MonitorConfig
from forethought.rollout import RolloutConfig
from forethought.tasks.drift import DriftConfig
from machine import machine_info

RESULTS = Path(__file__).parent / "results" / "uncertainty.json"
DRIFT = DriftConfig(at_step=1100, parameter="m", scale=0.5)
QUICK_DRIFT = DriftConfig(at_step=500, parameter="m", scale=0.5)
RECOVERY_TOLERANCE = 0.10  # recovered once within 10% of the pre-drift evaluation return
PENALTY = 1.0


def run(name: str, workdir: Path, **settings) -> list[dict]:
    start = time.perf_counter()
    config = TrainConfig(
        env="Pendulum-v1", planner="icem", out=workdir / name, quiet=True, **settings
    )
    history = train(config).history
    print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return history


def drift_summary(history: list[dict], drift_step: int) -> dict:
    alarms = [e["step"] for e in history if e.get("event") == "model_drift"]
    evals = sorted(
        ((r["env_steps"], r["eval_return"]) for r in history if r.get("eval_return") is not None),
        key=lambda x: x[0],
    )
    before = [ret for step, ret in evals if step <= drift_step]
    pre = before[-1] if before else None
    recovered_at = None
    if pre is not None:
        for step, ret in evals:
            if step > drift_step and ret >= pre - RECOVERY_TOLERANCE * abs(pre):
                recovered_at = step
                break
    first_after = next((s for s in alarms if s > drift_step), None)
    return {
        "alarms": alarms,
        "false_alarms": sum(s <= drift_step for s in alarms),
        "detection_delay": None if first_after is None else first_after - drift_step,
        "pre_drift_eval_return": pre,
        "recovered_at_step": recovered_at,
        "steps_to_recover": None if recovered_at is None else recovered_at - drift_step,
        "evaluations": evals,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one seed, short runs (smoke test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    drift = QUICK_DRIFT if args.quick else DRIFT
    episodes = 4 if args.quick else 8
    eval_every = 100 if args.quick else 50
    eval_episodes = 2 if args.quick else 3
    pessimism_episodes = 3 if args.quick else 5
    monitor = MonitorConfig(enabled=True)
    results: dict = {
        "machine": machine_info(),
        "quick": args.quick,
        "seeds": seeds,
        "drift": {},
        "pessimism": {},
    }
    results["settings"] = {
        "drift": drift.__dict__, "monitor": monitor.__dict__, "episodes": episodes,
        "eval_every_steps": eval_every, "eval_episodes": eval_episodes, "penalty": PENALTY,
        "recovery_tolerance": RECOVERY_TOLERANCE,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for seed in seeds:
            print(f"seed {seed}", flush=True)
            common = dict(seed=seed, episodes=episodes, eval_episodes=eval_episodes)
            quiet_run = run(f"nodrift-{seed}", workdir, monitor=monitor, eval_every=100, **common)
            triggered = run(
                f"triggered-{seed}",
                workdir,
                monitor=monitor,
                drift=drift,
                eval_every_steps=eval_every,
                **common,
            )
            scheduled = run(
                f"scheduled-{seed}", workdir, drift=drift, eval_every_steps=eval_every, **common
            )
            results["drift"][seed] = {
                "no_drift_false_alarms": len(
                    [e for e in quiet_run if e.get("event") == "model_drift"]
                ),
                "no_drift_steps": episodes * 200,
                "triggered": drift_summary(triggered, drift.at_step),
                "per_episode": drift_summary(scheduled, drift.at_step),
            }
            pess = {}
            for label, penalty in (("neutral", 0.0), ("pessimistic", PENALTY)):
                history = run(
                    f"{label}-{seed}",
                    workdir,
                    episodes=pessimism_episodes,
                    eval_episodes=eval_episodes,
                    seed=seed,
                    rollout=RolloutConfig(uncertainty_penalty=penalty),
                )
                rows = [
                    r for r in history if "event" not in r and r["plan_disagreement"] is not None
                ]
                pess[label] = {
                    "median_plan_disagreement": statistics.median(
                        r["plan_disagreement"] for r in rows
                    ),
                    "final_eval_return": rows[-1]["eval_return"],
                    "per_episode_plan_disagreement": [r["plan_disagreement"] for r in rows],
                }
            results["pessimism"][seed] = pess
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))  # after every seed: nothing lost
    print(
        json.dumps(
            {
                s: {k: v for k, v in d.items() if k != "evaluations"}
                for s, d in results["drift"].items()
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
