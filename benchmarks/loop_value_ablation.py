"""Which part of `--algo loop` makes its Pendulum-v1 evaluations dip below plain MPC's?

On Pendulum-v1 the loop's evaluations fall back to -600 to -1,000 for one or two evaluations
after it first reaches the threshold (README, sample-efficiency rows), where plain MPC stays at
-168. This runs the loop on one seed with one part changed at a time: no value at the horizon,
no actor proposals, a shorter discount (0.95: the value weighs 0.36 at the 20-step horizon
instead of 0.82), five value networks averaged, and SAC's critic in place of the state value.
Per run: the evaluation curve, and per
training episode how many turns the pendulum made and its mean |angular velocity| over the last
100 steps (a balanced pendulum makes about one turn and ends near 0; a rotating one keeps
turning), read from the run's transition log.

    python benchmarks/loop_value_ablation.py                      # seed 5, 1,200 steps, ~20 min
    python benchmarks/loop_value_ablation.py --seed 4 --variants base no-terminal-value

Runs live in --runs (ignored by git); a finished one is read, not rerun. Writes
benchmarks/results/loop_value_ablation.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from machine import machine_info

HERE = Path(__file__).parent
VARIANTS = {
    "base": ({}, {}),
    "no-terminal-value": ({"terminal_value": False}, {}),
    "no-proposals": ({"proposals": 0}, {}),
    "gamma-0.95": ({"gamma": 0.95}, {}),
    "value-members-5": ({}, {"members": 5}),
    "critic": ({"value": "critic"}, {}),  # SAC's critic at the horizon instead of the state value
}


def config_for(variant: str, seed: int, steps: int, out: Path):
    """The sample-efficiency benchmark's Pendulum loop run with one part changed."""
    from sample_efficiency import EVERY
    from sample_efficiency import config_for as benchmark_config

    env = "Pendulum-v1"
    base = benchmark_config(env, "loop", seed, steps, EVERY[env], out.parent)
    loop_changes, value_changes = VARIANTS[variant]
    return replace(
        base,
        out=out,
        loop=replace(base.loop, **loop_changes),
        value=replace(base.value, **value_changes),
    )


def finished(out: Path, steps: int) -> bool:
    metrics = out / "metrics.jsonl"
    if not metrics.exists():
        return False
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    return any(r.get("env_steps", 0) >= steps for r in rows)


def episodes(out: Path, steps: int, obs_dim: int = 3, action_dim: int = 1) -> list[dict]:
    """Per training episode in the first `steps` transitions: its return, the turns the
    pendulum made, and its mean |angular velocity| over the episode's last 100 steps."""
    from forethought.data.log import TransitionLog

    records = TransitionLog(out / "transitions.bin", obs_dim, action_dim).records(0, steps)
    rows = []
    for ep in np.unique(records[:, 0]).astype(int):
        e = records[records[:, 0] == ep]
        angle = np.unwrap(np.arctan2(e[:, 3], e[:, 2]))
        rows.append(
            {
                "episode": int(ep),
                "return": float(e[:, 6].sum()),
                "turns": float(np.abs(np.diff(angle)).sum() / (2 * np.pi)),
                "mean_abs_velocity_last_100": float(np.abs(e[-100:, 4]).mean()),
            }
        )
    return rows


def curve(out: Path, steps: int) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    return [
        {"env_steps": r["env_steps"], "eval_return": r["eval_return"]}
        for r in rows
        if "eval_return" in r and r["env_steps"] <= steps
    ]


def main() -> None:
    from forethought.runtime import configure_cpu
    from forethought.trainers import train

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=5, help="seed (default: 5)")
    ap.add_argument("--steps", type=int, default=1200, help="environment steps (default: 1200)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--runs", type=Path, default=HERE / ".runs" / "loop_value_ablation")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "loop_value_ablation.json")
    args = ap.parse_args()
    configure_cpu(1)
    results = {}
    for variant in args.variants:
        out = args.runs / f"{variant}-seed{args.seed}"
        if not finished(out, args.steps):
            train(config_for(variant, args.seed, args.steps, out))
        results[variant] = {"curve": curve(out, args.steps), "episodes": episodes(out, args.steps)}
        evals = [round(p["eval_return"]) for p in results[variant]["curve"]]
        print(f"{variant:18s} evaluations {evals}", flush=True)
    report = {
        "benchmark": "loop_value_ablation",
        "machine": machine_info(),
        "env": "Pendulum-v1",
        "seed": args.seed,
        "steps": args.steps,
        "variants": {v: {"loop": VARIANTS[v][0], "value": VARIANTS[v][1]} for v in args.variants},
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
