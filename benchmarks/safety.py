"""Safety: what a constraint that vetoes imagined plans costs in return and saves in violations.

Pendulum-v1 with a forbidden angle zone (`--safety.constraint pendulum-zone`: 0.6-1.6 rad from
upright on one side, so a safe swing-up goes the other way), cost limit 0 violating steps per
episode. Per seed, with the cost measured by the environment wrapper in every run:

    mpc              plans for return only (`--safety.no-veto`): the unconstrained baseline
    mpc-constrained  chance-constrained planning: candidates whose imagined trajectories enter
                     the zone on more than delta of their particles are vetoed
    sac              Stable-Baselines3 SAC (zoo settings) on the task's reward alone
    sac-lagrangian   SAC on reward - lambda x cost, lambda raised by dual ascent after each
                     episode (`--safety.lagrangian`, limit 0): the usual model-free answer
    mbpo-shield      MBPO (SB3 SAC on real and imagined data) trained on the reward alone, its
                     SAC policy evaluated under the shield (`forethought evaluate --shield`):
                     the constrained planner acts where the policy's imagined next steps would
                     enter the zone (--mbpo-steps, default 3,000; not in the default methods)

MPC runs 5 episodes (1,000 steps), SAC 20,000 steps (--sac-steps). Reported: evaluation return
and evaluation cost (violating steps per episode, 10 episodes on the shared seeds) after every
MPC episode and every 1,000 SAC steps, training-time violations, vetoed steps. Writes
benchmarks/results/safety.json (every raw number and the machine) and safety.png (return
against cost). Runs are trials of the sweep in benchmarks/.runs/safety/{full,quick}
(benchmarks/runs.py): reused or resumed when the script starts again; --workers 2 runs two at once.

    python benchmarks/safety.py --workers 2    # 3 seeds x 4 methods (~30 min on 2 cores)
    python benchmarks/safety.py --quick --out /tmp/safety.json   # 1 seed, 2 episodes (smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from forethought.config import TrainConfig
from forethought.tasks.constraints import PENDULUM_ZONE, SafetyConfig, with_costs
from machine import machine_info
from runs import add_arguments, run_all

RESULTS = Path(__file__).parent / "results" / "safety.json"
RUNS = Path(__file__).parent / ".runs" / "safety"
CONSTRAINT = "pendulum-zone"
METHODS = {
    "mpc": SafetyConfig(constraint=CONSTRAINT, veto=False),
    "mpc-constrained": SafetyConfig(constraint=CONSTRAINT),
    "sac": SafetyConfig(constraint=CONSTRAINT),
    "sac-lagrangian": SafetyConfig(constraint=CONSTRAINT, lagrangian=True, cost_limit=0.0),
    "mbpo-shield": SafetyConfig(constraint=CONSTRAINT),
}
DEFAULT_METHODS = ["mpc", "mpc-constrained", "sac", "sac-lagrangian"]
SAC_EVERY = 1_000


def config_for(method: str, seed: int, episodes: int, steps: dict, out: Path) -> TrainConfig:
    common = dict(env="Pendulum-v1", seed=seed, out=out / f"{method}-seed{seed}", quiet=True,
                  safety=METHODS[method])  # fmt: skip
    if method == "mbpo-shield":
        every = min(SAC_EVERY, steps["mbpo"])
        return TrainConfig(algo="mbpo", steps=steps["mbpo"], eval_every_steps=every, **common)
    sac_steps = steps["sac"]
    if method.startswith("sac"):
        every = min(SAC_EVERY, sac_steps)
        return TrainConfig(algo="sac", steps=sac_steps, eval_every_steps=every, **common)
    return TrainConfig(planner="icem", episodes=episodes, steps=200 * episodes, **common)


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
        "vetoed_steps": [r.get("vetoed_steps", 0) for r in episodes_rows],
        "lagrange_multiplier": [r.get("lagrange_multiplier") for r in episodes_rows],
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


def shielded(entry: dict, run_dir: Path, episodes: int) -> dict:
    """The run's SAC policy evaluated alone and under the shield (the entry's final numbers
    become the shielded ones; the policy's own are kept beside them)."""
    from forethought.tools.evaluate import EvaluateArgs, evaluate_controllers

    args = EvaluateArgs(run_dir=run_dir, controllers=("policy",), shield=CONSTRAINT,
                        episodes=episodes, quiet=True)  # fmt: skip
    report = evaluate_controllers(args)
    policy, shield = report["policy"], report["shielded"]
    return {
        **entry,
        "policy_eval_return": policy["eval_return"],
        "policy_eval_cost": policy["eval_cost"],
        "final_eval_return": shield["eval_return"],
        "final_eval_cost": shield["eval_cost"],
        "final_eval_costs": shield["eval_costs"],
        "shield": shield,  # every number of the shielded evaluation, overrides included
    }


def random_reference(episodes: int) -> dict:
    """Uniform random actions on the evaluation seeds (1000 + j): the floor a normalised return
    is measured from, and each episode's cost (seed 1001 starts inside the zone)."""
    from forethought.tasks import make_env
    from forethought.tasks.episodes import evaluate_batched

    envs = [with_costs(make_env("Pendulum-v1"), METHODS["mpc"]) for _ in range(episodes)]
    rng = np.random.default_rng(0)
    costs = np.zeros(episodes)
    act = lambda obs, rows: rng.uniform(-2.0, 2.0, (len(rows), 1)).astype(np.float32)  # noqa: E731
    returns = evaluate_batched(envs, act, [1000 + j for j in range(episodes)], costs)
    starts = []
    for j, env in enumerate(envs):
        env.reset(seed=1000 + j)
        theta = float((env.unwrapped.state[0] + np.pi) % (2 * np.pi) - np.pi)
        starts.append(theta)
    return {"eval_return": float(returns.mean()), "eval_returns": returns.tolist(),
            "eval_costs": costs.tolist(), "start_angles": starts}  # fmt: skip


def comparisons(methods: dict[str, list[dict]], reference: dict) -> dict:
    """The issue's aims as numbers: cost within the limit (0) on every seed, return kept against
    unconstrained MPC, training violations against SAC-Lagrangian's."""
    floor = reference["eval_return"]
    low, high = PENDULUM_ZONE
    feasible = [not low <= a <= high for a in reference["start_angles"]]  # starts outside it
    out: dict = {"episodes_starting_in_the_zone": [j for j, f in enumerate(feasible) if not f]}
    for m, es in methods.items():
        out[f"{m}_final_eval_cost_within_limit_every_seed"] = all(
            e["final_eval_cost"] <= 0 for e in es
        )
        outside = [
            [c for c, f in zip(e["final_eval_costs"], feasible, strict=True) if f] for e in es
        ]
        out[f"{m}_violations_in_episodes_starting_outside"] = outside_totals = [
            sum(o) for o in outside
        ]
        out[f"{m}_within_limit_every_seed_outside_start"] = all(t <= 0 for t in outside_totals)

    def mean(method: str, key: str) -> float | None:
        return statistics.fmean(e[key] for e in methods[method]) if method in methods else None

    if "mpc" in methods and "mpc-constrained" in methods:
        free, held = mean("mpc", "final_eval_return"), mean("mpc-constrained", "final_eval_return")
        out["return_lost_by_constraint"] = free - held
        # Pendulum's returns are negative: the share is taken above the random policy's return
        out["constrained_mpc_return_share_above_random"] = (held - floor) / (free - floor)
    if "sac-lagrangian" in methods and "mpc-constrained" in methods:
        theirs, ours = (
            mean("sac-lagrangian", "training_cost_total"),
            mean("mpc-constrained", "training_cost_total"),
        )
        out["training_violations_sac_lagrangian_over_constrained_mpc"] = (
            theirs / ours if ours else None
        )
    return out


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, entries in results["methods"].items():
        costs = [e["final_eval_cost"] for e in entries]
        returns = [e["final_eval_return"] for e in entries]
        ax.scatter(costs, returns, label=method)
    ax.set_xlabel("evaluation cost (violating steps per episode)")
    ax.set_ylabel("evaluation return")
    ax.set_title(
        f"Pendulum-v1, {CONSTRAINT}: final evaluation, one dot per seed\n"
        f"(MPC after {results['episodes']} episodes, SAC after {results['sac_steps']} steps)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 episodes")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per MPC run (default 5)")
    parser.add_argument(
        "--sac-steps", type=int, default=20_000, help="steps per SAC run (default 20000)"
    )
    parser.add_argument(
        "--mbpo-steps", type=int, default=3_000, help="steps per MBPO run (default 3000)"
    )
    parser.add_argument(
        "--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS),
        help=f"default: {' '.join(DEFAULT_METHODS)}",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})"
    )
    add_arguments(parser)
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    episodes = 2 if args.quick else args.episodes
    steps = (
        {"sac": 400, "mbpo": 400}
        if args.quick
        else {"sac": args.sac_steps, "mbpo": args.mbpo_steps}
    )
    out = RUNS / ("quick" if args.quick else "full")
    results = {
        "machine": machine_info(),
        "quick": args.quick,
        "constraint": CONSTRAINT,
        "episodes": episodes,
        "sac_steps": steps["sac"],
        "mbpo_steps": steps["mbpo"],
        "cost_limit": 0,
    }
    configs = {
        f"{method}-seed{seed}": config_for(method, seed, episodes, steps, out)
        for seed in range(seeds)
        for method in args.methods
    }

    def on_done(name: str, rows: list[dict], seconds: float) -> None:
        method, seed = name.rsplit("-seed", 1)
        print(method, "seed", seed, json.dumps(summary([entry_of(rows, seconds, int(seed))])))

    runs = run_all(out, configs, args, on_done)
    results["methods"] = {
        method: [entry_of(*runs[f"{method}-seed{seed}"], seed) for seed in range(seeds)]
        for method in args.methods
    }
    if "mbpo-shield" in results["methods"]:
        results["methods"]["mbpo-shield"] = [
            shielded(
                entry, out / "trials" / f"mbpo-shield-seed{entry['seed']}", 2 if args.quick else 10
            )
            for entry in results["methods"]["mbpo-shield"]
        ]
    # Methods not run this time keep their entries from the file (a later --methods adds rows).
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if previous.get("quick") == args.quick and previous.get("constraint") == CONSTRAINT:
        kept = {m: e for m, e in previous.get("methods", {}).items() if m not in results["methods"]}
        results["methods"] = {**kept, **results["methods"]}
    results["summary"] = {m: summary(entries) for m, entries in results["methods"].items()}
    results["random_policy"] = random_reference(2 if args.quick else 10)
    results["comparisons"] = comparisons(results["methods"], results["random_policy"])
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.with_suffix(".png"))
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
