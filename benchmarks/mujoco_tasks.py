"""MuJoCo: imagined-rollout and hybrid agents vs SAC (issue: MBPO, policy-guided planning).

1. InvertedPendulum-v5: environment steps until the evaluation return first reaches 1000, for
   MBPO, PETS-style MPC and SAC (and PPO if asked), 3 seeds each. The runs are shared with
   benchmarks/sample_efficiency.py (same configs, same run directories), so neither
   benchmark repeats the other's work.
2. HalfCheetah-v5 at a short budget: final evaluation return of SAC and MBPO at the same number
   of environment steps; then, from the MBPO run, the controllers of `forethought evaluate`
   (the policy alone, plain MPC, policy-guided MPC, the switching hybrid) with their
   milliseconds per action.

    python benchmarks/mujoco_tasks.py                 # full (CPU: about an hour; uses --device)
    python benchmarks/mujoco_tasks.py --quick         # tiny budgets, 1 seed (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console

import sample_efficiency as se
from forethought.config import MBPOConfig, TrainConfig
from forethought.tools.evaluate import EvaluateArgs, evaluate_controllers
from machine import machine_info

RESULTS = Path(__file__).parent / "results" / "mujoco.json"

CHEETAH_BUDGET = 20_000
# MBPO on HalfCheetah (sized for a 2-core CPU): the paper's 1-step branches and 5% real data,
# with fewer SAC updates per step (5 instead of 20) and model refits every 1000 steps.
CHEETAH_MBPO = MBPOConfig(
    model_train_freq=1_000, rollout_batch=10_000, gradient_steps=5, warmup_steps=2_000
)


def cheetah_config(method: str, seed: int, steps: int, runs: Path, device: str) -> TrainConfig:
    config = TrainConfig(
        env="HalfCheetah-v5",
        algo=method,
        seed=seed,
        steps=steps,
        episodes=10_000,
        eval_every_steps=steps // 10,
        eval_episodes=5,
        out=runs / f"HalfCheetah-v5-{method}-{steps}-seed{seed}",
        device=device,
        quiet=True,
    )
    if method == "mbpo":
        quick = steps < CHEETAH_BUDGET
        mbpo = (
            CHEETAH_MBPO
            if not quick
            else replace(
                CHEETAH_MBPO,
                model_train_freq=500,
                warmup_steps=500,
                gradient_steps=2,
                rollout_batch=1_000,
            )
        )
        config = replace(config, mbpo=mbpo)
    return config


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cheetah-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--methods", nargs="+", default=["mpc", "mbpo", "sac"])
    parser.add_argument("--skip", choices=["pendulum", "cheetah"], default=None)
    parser.add_argument("--device", default="cpu", help="torch device for every learner")
    parser.add_argument("--runs", type=Path, default=se.RUNS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.seeds = args.cheetah_seeds = [0]
    if args.out is None:
        args.out = args.runs / "mujoco.quick.json" if args.quick else RESULTS
    console = Console()
    rng = np.random.default_rng(0)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = {
        "benchmark": "mujoco",
        "quick": args.quick,
        "machine": machine_info(),
        "device": args.device,
        "inverted_pendulum": previous.get("inverted_pendulum"),
        "half_cheetah": previous.get("half_cheetah"),
    }

    if args.skip != "pendulum":
        env = "InvertedPendulum-v5"
        runs: dict[str, list[dict]] = {}
        for method in args.methods:
            for seed in args.seeds:
                steps = se.QUICK_BUDGET[method] if args.quick else se.BUDGET[env][method]
                config = se.config_for(env, method, seed, steps, se.EVERY[env], args.runs)
                config = replace(config, device=args.device)
                entry = se.measure(config, seed, steps, 1000.0)
                runs.setdefault(method, []).append(entry)
                console.print(
                    f"{env} {method} seed {seed}: 1000 reached at {entry['steps_to_threshold']} "
                    f"steps ({entry['seconds']:.0f} s)"
                )
        summary = se.summarise(env, runs, rng)
        if "mbpo" in runs and "sac" in runs:
            sac = np.array([s["steps_to_threshold"] or s["budget"] for s in runs["sac"]], float)
            mbpo = np.array([s["steps_to_threshold"] or s["budget"] for s in runs["mbpo"]], float)
            summary["sac_over_mbpo"] = se.ratio_interval(sac, mbpo, rng)
        results["inverted_pendulum"] = {"runs": runs, "summary": summary}

    if args.skip != "cheetah":
        steps = 3_000 if args.quick else CHEETAH_BUDGET
        cheetah: dict = {"budget": steps, "runs": {}, "controllers": {}}
        for seed in args.cheetah_seeds:
            for method in ("sac", "mbpo"):
                config = cheetah_config(method, seed, steps, args.runs, args.device)
                rows, seconds = se.run_once(config)
                x, y = se.curve(rows)
                cheetah["runs"].setdefault(method, []).append(
                    {
                        "seed": seed,
                        "final_eval_return": float(y[-1]),
                        "seconds": seconds,
                        "curve_steps": x.tolist(),
                        "curve_returns": y.tolist(),
                    }
                )
                console.print(f"HalfCheetah-v5 {method} seed {seed}: {y[-1]:.1f} ({seconds:.0f} s)")
                if method == "mbpo":
                    evaluate = EvaluateArgs(run_dir=config.out, episodes=5, quiet=True)
                    if args.quick:  # the smoke test checks the schema, not the numbers
                        evaluate = replace(evaluate, episodes=2, mpc_horizon=10)
                    report = evaluate_controllers(evaluate, console)
                    cheetah["controllers"][str(seed)] = report
        results["half_cheetah"] = cheetah

    # Re-read before writing: another invocation may have filled in the other part meanwhile.
    on_disk = json.loads(args.out.read_text()) if args.out.exists() else {}
    skipped = {"pendulum": "inverted_pendulum", "cheetah": "half_cheetah"}.get(args.skip)
    if skipped:
        results[skipped] = on_disk.get(skipped)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(args.out)
    console.print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
