"""Safety: what a constraint that vetoes imagined plans costs in return and saves in violations.

Three constrained tasks (`--task`), cost limit 0 violating steps per episode:

    pendulum-zone      Pendulum-v1 with a forbidden angle zone 0.6-1.6 rad from upright on one
                       side, so a safe swing-up goes the other way
    cartpole-position  the continuous cart-pole (200 steps) with the cart kept within 1 m of
                       the centre (the episode itself only ends at 2.4 m)
    cheetah-velocity   HalfCheetah-v5 (1,000 steps) no faster than 3.2096 m/s forward
                       (Safety-Gymnasium's velocity task; MPC episodes of 1,000 steps, evaluated
                       after the last one only; SAC 50,000 steps, as the limit binds only once
                       the cheetah runs well)

Per seed, with the cost measured by the environment wrapper in every run:

    mpc              plans for return only (`--safety.no-veto`): the unconstrained baseline
    mpc-constrained  chance-constrained planning: candidates whose imagined trajectories break
                     the constraint on more than delta of their particles are vetoed
    sac              Stable-Baselines3 SAC (zoo settings where the zoo has the task) on the
                     task's reward alone
    sac-lagrangian   SAC on reward - lambda x cost, lambda raised by dual ascent after each
                     episode (`--safety.lagrangian`, limit 0): the usual model-free answer
    mbpo-shield      MBPO (SB3 SAC on real and imagined data) trained on the reward alone, its
                     SAC policy evaluated under the shield (`forethought evaluate --shield
                     --shield-planner mpc`): constrained iCEM acts where the policy's imagined
                     next steps would break the constraint; one row per --shield-lookahead
                     (--mbpo-steps, default 3,000; not in the default methods)
    sac-shield       the sac runs' policy under the same shield, with an ensemble fitted on the
                     run's own replay buffer (`forethought evaluate` on a SAC run): a shield
                     over a policy that learned no model (not in the default methods)
    shielded-mbpo    MBPO with the shield on from its first model fit (`--safety.shield`):
                     exploration shielded too, evaluations of the shielded policy
                     (--mbpo-steps; not in the default methods)

MPC runs 5 episodes; SAC 20,000 steps on Pendulum, 10,000 on the cart-pole and 50,000 on the
cheetah (--sac-steps).
Reported: evaluation return and evaluation cost (violating steps per episode, 10 episodes on the
shared seeds) after every MPC episode and every 1,000 SAC steps, training-time violations, vetoed
steps. Writes benchmarks/results/safety.json (every raw number and the machine, one block per
task; a task or method not run keeps its block) and safety.png (return against cost, a panel
per task). Runs are trials of the sweep in benchmarks/.runs/safety/{full,quick}
(benchmarks/runs.py): reused or resumed when the script starts again; --workers 2 runs two at once.

    python benchmarks/safety.py --workers 2    # Pendulum: 3 seeds x 4 methods (~45 min on 2 cores)
    python benchmarks/safety.py --task cartpole-position --workers 2
    python benchmarks/safety.py --task cartpole-position --workers 2 --methods mpc mpc-constrained --mpc-horizon 40
    python benchmarks/safety.py --task cheetah-velocity --workers 2
    python benchmarks/safety.py --task cheetah-velocity --workers 2 --methods sac-shield --shield-planner guided
    python benchmarks/safety.py --quick --out /tmp/safety.json   # 1 seed, 2 episodes (smoke test)
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from forethought.config import TrainConfig
from forethought.tasks.cartpole import CARTPOLE_ID
from forethought.tasks.constraints import CONSTRAINTS, SafetyConfig, with_costs
from machine import machine_info
from runs import add_arguments, run_all

RESULTS = Path(__file__).parent / "results" / "safety.json"
RUNS = Path(__file__).parent / ".runs" / "safety"
METHOD_NAMES = [
    "mpc", "mpc-constrained", "sac", "sac-lagrangian", "mbpo-shield", "sac-shield", "shielded-mbpo"
]  # fmt: skip
SHIELDS = {"mbpo-shield": "mbpo-shield", "sac-shield": "sac"}  # shield rows: the trial they use
DEFAULT_METHODS = ["mpc", "mpc-constrained", "sac", "sac-lagrangian"]
SAC_EVERY = 1_000
DEFAULT_HORIZON = TrainConfig().planning.horizon
EVAL_EPISODES = TrainConfig().eval_episodes  # every evaluation, on the seeds 1000, 1001, ...


@dataclass(frozen=True)
class Task:
    """One constrained task: its environment, its constraint, and the budgets of its runs."""

    env: str
    sac_steps: int  # default --sac-steps
    trial_prefix: str  # the sweep's trial names; Pendulum's runs predate other tasks and have none
    episode_steps: int = 200
    mpc_eval_every: int = 1  # MPC evaluates after every this many episodes (and after the last)


TASKS = {
    "pendulum-zone": Task("Pendulum-v1", 20_000, ""),
    "cartpole-position": Task(CARTPOLE_ID, 10_000, "cartpole-"),
    # One MPC evaluation plans 10 x 1,000 steps (~10 CPU-min here): after the last episode only.
    "cheetah-velocity": Task(
        "HalfCheetah-v5", 50_000, "cheetah-", episode_steps=1_000, mpc_eval_every=5
    ),
}


def safety_for(method: str, constraint: str) -> SafetyConfig:
    if method == "mpc":
        return SafetyConfig(constraint=constraint, veto=False)
    if method == "sac-lagrangian":
        return SafetyConfig(constraint=constraint, lagrangian=True, cost_limit=0.0)
    if method == "shielded-mbpo":
        return SafetyConfig(constraint=constraint, shield=True)
    return SafetyConfig(constraint=constraint)


def method_key(method: str, horizon: int) -> str:
    """Planner rows at another horizon than the default are rows of their own: mpc-h40."""
    planned = method in ("mpc", "mpc-constrained") and horizon != DEFAULT_HORIZON
    return f"{method}-h{horizon}" if planned else method


def config_for(
    task: str, method: str, seed: int, episodes: int, steps: dict, out: Path, horizon: int
) -> TrainConfig:
    spec = TASKS[task]
    method = "sac" if method == "sac-shield" else method  # the sac trial, evaluated shielded
    name = f"{spec.trial_prefix}{method_key(method, horizon)}-seed{seed}"
    common = dict(env=spec.env, seed=seed, quiet=True, safety=safety_for(method, task),
                  out=out / name)  # fmt: skip
    if method in ("mbpo-shield", "shielded-mbpo"):
        every = min(SAC_EVERY, steps["mbpo"])
        return TrainConfig(algo="mbpo", steps=steps["mbpo"], eval_every_steps=every, **common)
    sac_steps = steps["sac"]
    if method.startswith("sac"):
        every = min(SAC_EVERY, sac_steps)
        return TrainConfig(algo="sac", steps=sac_steps, eval_every_steps=every, **common)
    planning = replace(TrainConfig().planning, horizon=horizon)
    return TrainConfig(
        planner="icem", episodes=episodes, steps=spec.episode_steps * episodes,
        eval_every=spec.mpc_eval_every, planning=planning, **common,
    )  # fmt: skip


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
        "shield_overrides": [r.get("shield_overrides") for r in episodes_rows],  # shielded-mbpo
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


def shielded(
    entry: dict, run_dir: Path, constraint: str, episodes: int, lookahead: int, planner: str
) -> dict:
    """The run's SAC policy evaluated alone and under the shield (the entry's final numbers
    become the shielded ones; the policy's own are kept beside them)."""
    from forethought.tools.evaluate import EvaluateArgs, evaluate_controllers

    args = EvaluateArgs(run_dir=run_dir, controllers=("policy",), shield=constraint,
                        shield_lookahead=lookahead, shield_planner=planner, episodes=episodes,
                        quiet=True)  # fmt: skip
    report = evaluate_controllers(args)
    policy, shield = report["policy"], report["shielded"]
    return {
        **entry,
        "shield_lookahead": lookahead,
        "shield_planner": planner,
        "policy_eval_return": policy["eval_return"],
        "policy_eval_cost": policy["eval_cost"],
        "final_eval_return": shield["eval_return"],
        "final_eval_cost": shield["eval_cost"],
        "final_eval_costs": shield["eval_costs"],
        "shield": shield,  # every number of the shielded evaluation, overrides included
    }


def random_reference(task: str, episodes: int) -> dict:
    """Uniform random actions on the evaluation seeds (1000 + j): the floor a normalised return
    is measured from, and whether each episode starts in violation (then limit 0 is out of
    reach whatever the agent does: Pendulum's seed 1001 starts inside the zone)."""
    from forethought.tasks import make_env
    from forethought.tasks.episodes import evaluate_batched

    spec, constraint = TASKS[task], CONSTRAINTS[task]
    envs = [with_costs(make_env(spec.env), safety_for("mpc", task)) for _ in range(episodes)]
    rng = np.random.default_rng(0)
    costs = np.zeros(episodes)

    space = envs[0].action_space

    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return rng.uniform(space.low, space.high, (len(rows), *space.shape)).astype(np.float32)

    returns = evaluate_batched(envs, act, [1000 + j for j in range(episodes)], costs)
    starts_violating = []
    for j, env in enumerate(envs):
        env.reset(seed=1000 + j)
        starts_violating.append(bool(constraint.env_cost(env)))
    return {"eval_return": float(returns.mean()), "eval_returns": returns.tolist(),
            "eval_costs": costs.tolist(), "starts_violating": starts_violating}  # fmt: skip


def comparisons(methods: dict[str, list[dict]], reference: dict) -> dict:
    """The issue's aims as numbers: cost within the limit (0) on every seed, return kept against
    unconstrained MPC, training violations against SAC-Lagrangian's."""
    floor = reference["eval_return"]
    feasible = [not v for v in reference["starts_violating"]]
    out: dict = {"episodes_starting_in_violation": [j for j, f in enumerate(feasible) if not f]}
    for m, es in methods.items():
        out[f"{m}_final_eval_cost_within_limit_every_seed"] = all(
            e["final_eval_cost"] <= 0 for e in es
        )
        outside = [
            [c for c, f in zip(e["final_eval_costs"], feasible, strict=True) if f] for e in es
        ]
        out[f"{m}_violations_in_feasible_episodes"] = totals = [sum(o) for o in outside]
        out[f"{m}_within_limit_every_seed_feasible_episodes"] = all(t <= 0 for t in totals)

    def mean(method: str, key: str) -> float | None:
        return statistics.fmean(e[key] for e in methods[method]) if method in methods else None

    horizons = [m.removeprefix("mpc-constrained") for m in methods if m.startswith("mpc-constr")]
    for h in horizons:  # "" (the default horizon) or "-h40": constrained vs free at one horizon
        free, held = f"mpc{h}", f"mpc-constrained{h}"
        if free in methods:
            free, held = mean(free, "final_eval_return"), mean(held, "final_eval_return")
            out[f"return_lost_by_constraint{h}"] = free - held
            out[f"constrained_mpc_return_share{h}"] = held / free
            # Pendulum's returns are negative: there the share is taken above the random policy's
            out[f"constrained_mpc_return_share_above_random{h}"] = (held - floor) / (free - floor)
        if "sac-lagrangian" in methods:
            theirs = mean("sac-lagrangian", "training_cost_total")
            ours = mean(f"mpc-constrained{h}", "training_cost_total")
            out[f"training_violations_sac_lagrangian_over_constrained_mpc{h}"] = (
                theirs / ours if ours else None
            )
    return out


def plot(results: dict, path: Path) -> None:
    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, (task, block) in zip(axes[0], tasks.items(), strict=True):
        for method, entries in block["methods"].items():
            costs = [e["final_eval_cost"] for e in entries]
            returns = [e["final_eval_return"] for e in entries]
            ax.scatter(costs, returns, label=method)
        ax.set_xlabel("evaluation cost (violating steps per episode)")
        ax.set_ylabel("evaluation return")
        ax.set_title(
            f"{task}: final evaluation, one dot per seed\n"
            f"(MPC after {block['episodes']} episodes, SAC after {block['sac_steps']} steps)",
            fontsize=9,
        )
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_task(task: str, args: argparse.Namespace) -> dict:
    """Every method's runs on one task (trials of the benchmark's sweep), and their numbers."""
    spec = TASKS[task]
    seeds = 1 if args.quick else args.seeds
    episodes = 2 if args.quick else args.episodes
    sac_steps = spec.sac_steps if args.sac_steps is None else args.sac_steps
    steps = {"sac": 400, "mbpo": 400} if args.quick else {"sac": sac_steps, "mbpo": args.mbpo_steps}
    out = RUNS / ("quick" if args.quick else "full")
    configs = {
        config.out.name: config
        for seed in range(seeds)
        for method in args.methods
        if (config := config_for(task, method, seed, episodes, steps, out, args.mpc_horizon))
    }

    def on_done(name: str, rows: list[dict], seconds: float) -> None:
        seed = int(name.rsplit("-seed", 1)[1])
        print(name, json.dumps(summary([entry_of(rows, seconds, seed)])))

    runs = run_all(out, configs, args, on_done)
    methods = {
        key: [
            entry_of(*runs[f"{spec.trial_prefix}{key}-seed{seed}"], seed) for seed in range(seeds)
        ]
        for method in args.methods
        if method not in SHIELDS and (key := method_key(method, args.mpc_horizon))
    }
    planner = args.shield_planner
    for method, lookahead in itertools.product(args.methods, args.shield_lookahead):
        if method not in SHIELDS:
            continue
        trials = [f"{spec.trial_prefix}{SHIELDS[method]}-seed{seed}" for seed in range(seeds)]
        key = f"{method}-{lookahead}" + ("-guided" if planner == "guided" else "")
        run = [
            (entry_of(*runs[name], seed), out / "trials" / name) for seed, name in enumerate(trials)
        ]
        methods[key] = [
            shielded(entry, run_dir, task, EVAL_EPISODES, lookahead, planner)
            for entry, run_dir in run
        ]
    return {"env": spec.env, "constraint": task, "episodes": episodes, "sac_steps": steps["sac"],
            "mbpo_steps": steps["mbpo"], "cost_limit": 0, "methods": methods}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--task", choices=list(TASKS), default="pendulum-zone", help="default pendulum-zone"
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 episodes")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per MPC run (default 5)")
    parser.add_argument(
        "--sac-steps", type=int, default=None,
        help="steps per SAC run (default: 20000 on Pendulum, 10000 on the cart-pole, 50000 on the "
        "cheetah)",
    )  # fmt: skip
    parser.add_argument(
        "--mpc-horizon", type=int, default=DEFAULT_HORIZON,
        help=f"planning horizon of mpc and mpc-constrained; another than {DEFAULT_HORIZON} gives "
        f"rows of their own (mpc-h40, mpc-constrained-h40) (default {DEFAULT_HORIZON})",
    )  # fmt: skip
    parser.add_argument(
        "--mbpo-steps", type=int, default=3_000, help="steps per MBPO run (default 3000)"
    )
    parser.add_argument(
        "--shield-lookahead", type=int, nargs="+", default=[20],
        help="mbpo-shield, sac-shield: steps the shield imagines; each value is a row (default 20)",
    )  # fmt: skip
    parser.add_argument(
        "--shield-planner", choices=["mpc", "guided"], default="mpc",
        help="mbpo-shield, sac-shield: the constrained planner that takes over: iCEM over 20 "
        "steps, or the policy-guided planner (rows end in -guided) (default mpc)",
    )  # fmt: skip
    parser.add_argument(
        "--methods", nargs="+", default=DEFAULT_METHODS, choices=METHOD_NAMES,
        help=f"default: {' '.join(DEFAULT_METHODS)}",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})"
    )
    add_arguments(parser)
    args = parser.parse_args()
    block = run_task(args.task, args)
    # Tasks and methods not run this time keep their entries from the file.
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    tasks = previous.get("tasks", {}) if previous.get("quick") == args.quick else {}
    kept = tasks.get(args.task, {}).get("methods", {})
    block["methods"] = {**{m: e for m, e in kept.items() if m not in block["methods"]},
                        **block["methods"]}  # fmt: skip
    block["summary"] = {m: summary(entries) for m, entries in block["methods"].items()}
    block["random_policy"] = random_reference(args.task, EVAL_EPISODES)
    block["comparisons"] = comparisons(block["methods"], block["random_policy"])
    results = {"machine": machine_info(), "quick": args.quick, "tasks": {**tasks, args.task: block}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps(block["summary"], indent=1))


if __name__ == "__main__":
    main()
