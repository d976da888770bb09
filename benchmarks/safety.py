"""Safety: what a constraint that vetoes imagined plans costs in return and saves in violations.

Pendulum-v1 with a forbidden angle zone (`--safety.constraint pendulum-zone`: 0.6-1.6 rad from
upright on one side, so a safe swing-up goes the other way). Per seed, two MPC runs of the same
length, both with the cost measured by the environment wrapper:

    mpc              plans for return only (`--safety.no-veto`): the unconstrained baseline
    mpc-constrained  chance-constrained planning: candidates whose imagined trajectories enter
                     the zone on more than delta of their particles are vetoed

Reported: evaluation return and evaluation cost (violating steps per episode, 10 episodes on the
shared seeds) after every episode, training-time violations, vetoed steps. Writes
benchmarks/results/safety.json (every raw number and the machine) and safety.png (return
against cost). Runs are trials of the sweep in benchmarks/.runs/safety/{full,quick}
(benchmarks/runs.py): reused or resumed when the script starts again; --workers 2 runs two at once.

    python benchmarks/safety.py            # 3 seeds, 5 episodes each (~25 min on 2 cores)
    python benchmarks/safety.py --quick --out /tmp/safety.json   # 1 seed, 2 episodes (smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from forethought.config import TrainConfig
from forethought.tasks.constraints import SafetyConfig
from machine import machine_info
from runs import add_arguments, run_all

RESULTS = Path(__file__).parent / "results" / "safety.json"
RUNS = Path(__file__).parent / ".runs" / "safety"
CONSTRAINT = "pendulum-zone"
METHODS = {
    "mpc": SafetyConfig(constraint=CONSTRAINT, veto=False),
    "mpc-constrained": SafetyConfig(constraint=CONSTRAINT),
}


def config_for(method: str, seed: int, episodes: int, out: Path) -> TrainConfig:
    return TrainConfig(
        env="Pendulum-v1",
        planner="icem",
        episodes=episodes,
        steps=200 * episodes,
        seed=seed,
        out=out / f"{method}-seed{seed}",
        quiet=True,
        safety=METHODS[method],
    )


def entry_of(rows: list[dict], seconds: float, seed: int) -> dict:
    episodes_rows = [r for r in rows if "event" not in r]
    last = episodes_rows[-1]
    return {
        "seed": seed,
        "seconds": seconds,
        "env_steps": [r["env_steps"] for r in episodes_rows],
        "eval_return": [r["eval_return"] for r in episodes_rows],
        "eval_cost": [r["eval_cost"] for r in episodes_rows],
        "training_cost": [r["cost"] for r in episodes_rows],
        "vetoed_steps": [r["vetoed_steps"] for r in episodes_rows],
        "final_eval_return": last["eval_return"],
        "final_eval_cost": last["eval_cost"],
        "final_eval_costs": last["eval_costs"],
        "training_cost_total": sum(r["cost"] for r in episodes_rows),
    }


def summary(entries: list[dict]) -> dict:
    return {
        key: statistics.fmean(e[key] for e in entries)
        for key in ("final_eval_return", "final_eval_cost", "training_cost_total")
    }


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, entries in results["methods"].items():
        costs = [e["final_eval_cost"] for e in entries]
        returns = [e["final_eval_return"] for e in entries]
        ax.scatter(costs, returns, label=method)
    ax.set_xlabel("evaluation cost (violating steps per episode)")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"Pendulum-v1, {CONSTRAINT}: after {results['episodes']} episodes", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 episodes")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per run (default 5)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})"
    )
    add_arguments(parser)
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    episodes = 2 if args.quick else args.episodes
    out = RUNS / ("quick" if args.quick else "full")
    results = {
        "machine": machine_info(),
        "quick": args.quick,
        "constraint": CONSTRAINT,
        "episodes": episodes,
    }
    configs = {
        f"{method}-seed{seed}": config_for(method, seed, episodes, out)
        for seed in range(seeds)
        for method in METHODS
    }

    def on_done(name: str, rows: list[dict], seconds: float) -> None:
        method, seed = name.rsplit("-seed", 1)
        print(method, "seed", seed, json.dumps(summary([entry_of(rows, seconds, int(seed))])))

    runs = run_all(out, configs, args, on_done)
    results["methods"] = {
        method: [entry_of(*runs[f"{method}-seed{seed}"], seed) for seed in range(seeds)]
        for method in METHODS
    }
    results["summary"] = {m: summary(entries) for m, entries in results["methods"].items()}
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.with_suffix(".png"))
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
