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
    python benchmarks/mujoco_tasks.py --skip pendulum --cheetah-methods loop-imagined \
        --cheetah-seeds 0 1 2 --workers 2             # the planner with MBPO's data for its SAC
    python benchmarks/mujoco_tasks.py --skip pendulum --cheetah-methods loop-explore \
        --cheetah-steps 50000 --runs benchmarks/.runs/cheetah_explore  # noisy planned actions
    python benchmarks/mujoco_tasks.py --skip cheetah --methods mpc-value --workers 2
    python benchmarks/mujoco_tasks.py --skip cheetah --methods loop-imagined --workers 2
    python benchmarks/mujoco_tasks.py --markdown      # the README's HalfCheetah tables, from the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
from rich.console import Console

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import curves
import sample_efficiency as se
from forethought.config import LoopConfig, MBPOConfig, TrainConfig
from forethought.planners import PlannerConfig
from forethought.tools.evaluate import EvaluateArgs, evaluate_controllers
from machine import machine_info
from runs import add_arguments, run_all

RESULTS = Path(__file__).parent / "results" / "mujoco.json"

CHEETAH_BUDGET = 20_000
# MBPO on HalfCheetah (sized for a 2-core CPU): the paper's 1-step branches and 5% real data,
# with fewer SAC updates per step (5 instead of 20) and model refits every 1000 steps.
CHEETAH_MBPO = MBPOConfig(
    model_train_freq=1_000, rollout_batch=10_000, gradient_steps=5, warmup_steps=2_000
)

# The planner in the loop plans 5 steps ahead (TD-MPC's horizon); the value covers the rest.
CHEETAH_LOOP_PLANNING = PlannerConfig(horizon=5)
# loop-imagined: its SAC also learns from MBPO's data (the MBPO settings above: 1-step branches
# from 10,000 real states per model fit, 95% imagined rows, 5 updates per real step).
CHEETAH_LOOP_IMAGINED = LoopConfig(imagined_ratio=0.95, branches=10_000, gradient_steps=5)
# loop-explore: loop-imagined whose planned actions get Gaussian noise (std 0.1 x the action
# range) in training episodes, as SAC's stochastic policy gives MBPO's data.
CHEETAH_EXPLORE_STD = 0.1
# loop-g10: loop-imagined with 10 SAC updates per real step (MBPO's default on InvertedPendulum,
# where the loop with them reached 1000 in 1,000-1,500 steps), twice the MBPO row's 5.
CHEETAH_LOOP_G10 = replace(CHEETAH_LOOP_IMAGINED, gradient_steps=10)
# loop-anchor: loop-imagined whose every plan starts at the actor's mean trajectory with a
# narrow search (std 0.1 x the action range), so that SAC learns from actions near its own
# (LOOP's "actor divergence": the planner's data drifting from the actor slows its learning).
CHEETAH_LOOP_ANCHOR = replace(CHEETAH_LOOP_IMAGINED, anchor=True)
CHEETAH_ANCHOR_PLANNING = replace(CHEETAH_LOOP_PLANNING, init_std=0.1)
# loop-anchor-critic: loop-anchor whose plans end at SAC's critic (the twin-Q minimum at the
# actor's action) instead of the planner's own state value: LOOP's own terminal value.
CHEETAH_LOOP_ANCHOR_CRITIC = replace(CHEETAH_LOOP_ANCHOR, value="critic")
# loop-anchor-sampled: loop-anchor whose training plans start at a trajectory drawn from the
# actor instead of its mean, so the planner explores where SAC's own policy would (MBPO's data
# comes from SAC's sampled actions); evaluation plans start at the mean.
CHEETAH_LOOP_ANCHOR_SAMPLED = replace(CHEETAH_LOOP_ANCHOR, anchor_sampled=True)
ANCHORED_LOOP_METHODS = ("loop-anchor", "loop-anchor-critic", "loop-anchor-sampled")
IMAGINED_LOOP_METHODS = ("loop-imagined", "loop-explore", "loop-g10", *ANCHORED_LOOP_METHODS)
LOOP_METHODS = ("loop", *IMAGINED_LOOP_METHODS)


def cheetah_config(method: str, seed: int, steps: int, runs: Path, device: str) -> TrainConfig:
    config = TrainConfig(
        env="HalfCheetah-v5",
        algo="loop" if method in LOOP_METHODS else method,
        eval_every=10_000,  # the planner's runs evaluate on the step schedule only, like SB3's
        seed=seed,
        steps=steps,
        episodes=10_000,
        eval_every_steps=steps // 10 if steps >= CHEETAH_BUDGET else steps // 3,
        eval_episodes=5 if steps >= CHEETAH_BUDGET else 2,  # --quick checks the schema only
        out=runs / f"HalfCheetah-v5-{method}-{steps}-seed{seed}",
        device=device,
        quiet=True,
    )
    if method == "loop":
        return replace(config, planning=CHEETAH_LOOP_PLANNING)
    if method in IMAGINED_LOOP_METHODS:
        explore = CHEETAH_EXPLORE_STD if method == "loop-explore" else 0.0
        loop = {
            "loop-g10": CHEETAH_LOOP_G10,
            "loop-anchor": CHEETAH_LOOP_ANCHOR,
            "loop-anchor-critic": CHEETAH_LOOP_ANCHOR_CRITIC,
            "loop-anchor-sampled": CHEETAH_LOOP_ANCHOR_SAMPLED,
        }.get(method, CHEETAH_LOOP_IMAGINED)
        anchored = method in ANCHORED_LOOP_METHODS
        planning = CHEETAH_ANCHOR_PLANNING if anchored else CHEETAH_LOOP_PLANNING
        return replace(config, planning=planning, loop=loop, explore_std=explore)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cheetah-seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--methods", nargs="+", default=["mpc", "loop", "loop-critic", "mbpo", "sac"],
        choices=list(se.BUDGET["InvertedPendulum-v5"]),
        help="InvertedPendulum runs; also ppo, mpc-value (iCEM over 40 steps with the learned "
        "value at its horizon) and loop-imagined (the loop whose SAC also learns from MBPO's "
        "data; ends at the threshold) (default: mpc loop loop-critic mbpo sac)",
    )  # fmt: skip
    parser.add_argument(
        "--cheetah-methods", nargs="+", default=["sac", "mbpo", "loop"],
        choices=["sac", "td3", "mbpo", *LOOP_METHODS],
        help="sac, td3 (SB3 TD3, the zoo's MuJoCo settings), mbpo, loop, loop-imagined (loop "
        "whose SAC also learns from MBPO's imagined data), loop-explore (loop-imagined with "
        f"--explore-std {CHEETAH_EXPLORE_STD}), loop-g10 (loop-imagined with 10 SAC updates "
        "per step), loop-anchor (loop-imagined whose plans start at the actor's, std 0.1), "
        "loop-anchor-critic (loop-anchor with SAC's critic at the horizon), "
        "loop-anchor-sampled (loop-anchor whose training plans start at an actor sample) "
        "(default: sac mbpo loop)",
    )  # fmt: skip
    parser.add_argument("--cheetah-steps", type=int, default=CHEETAH_BUDGET)
    parser.add_argument(
        "--cheetah-shield", choices=["cheetah-velocity"], default=None,
        help="also evaluate each MBPO and loop policy under the shield for this constraint "
        "(forethought evaluate --shield; every controller's cost is reported) (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--shield-planner", choices=["mpc", "guided"], default="mpc",
        help="the constrained planner that acts when the shield overrides (default mpc)",
    )  # fmt: skip
    parser.add_argument("--skip", choices=["pendulum", "cheetah"], default=None)
    parser.add_argument("--device", default="cpu", help="torch device for every learner")
    parser.add_argument("--runs", type=Path, default=se.RUNS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--resummarise", action="store_true",
        help="recompute the HalfCheetah summaries and plot of --out from its runs; run nothing",
    )  # fmt: skip
    parser.add_argument(
        "--markdown", action="store_true",
        help="print the README's HalfCheetah tables from --out (every seed's final return, the "
        "summaries against MBPO, the returns at 20,000 steps of the longest runs, each loop "
        "run's actor alone); run nothing",
    )  # fmt: skip
    add_arguments(parser)
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.quick:
        args.seeds = args.cheetah_seeds = [0]
        args.cheetah_steps = 3_000
    if args.out is None:
        args.out = args.runs / "mujoco.quick.json" if args.quick else RESULTS
    console = Console()
    if args.resummarise:
        _save(args, "half_cheetah", _resummarised)
        console.print(f"results: {args.out}")
        return 0
    if args.markdown:
        if not args.out.exists():
            raise SystemExit(f"error: no results at {args.out}; run the benchmark first")
        print(cheetah_markdown(json.loads(args.out.read_text())["half_cheetah"] or {}))
        return 0
    if args.skip != "pendulum":
        inverted_pendulum(args, console)
    if args.skip != "cheetah":
        half_cheetah(args, console)
    console.print(f"results: {args.out}")
    return 0


def inverted_pendulum(args, console: Console) -> None:
    """Every InvertedPendulum run as a trial of the benchmark sweep (--workers at once); each
    finished run is measured and merged into the results file at once."""
    env = "InvertedPendulum-v5"
    jobs, configs = {}, {}  # trial name: (method, seed, budget), and its config
    for method in args.methods:
        for seed in args.seeds:
            steps = se.QUICK_BUDGET[method] if args.quick else se.BUDGET[env][method]
            config = se.config_for(env, method, seed, steps, se.EVERY[env], args.runs)
            name = config.out.name
            jobs[name], configs[name] = (method, seed, steps), replace(config, device=args.device)

    def on_done(name: str, rows: list[dict], seconds: float) -> None:
        method, seed, steps = jobs[name]
        entry = curves.measure(rows, seconds, seed, steps, 1000.0, method in se.STOPS_AT_THRESHOLD)
        console.print(
            f"{env} {method} seed {seed}: 1000 reached at {entry['steps_to_threshold']} "
            f"steps ({entry['seconds']:.0f} s)"
        )

        def merge(part: dict | None) -> dict:
            runs = _merged_runs((part or {}).get("runs", {}), method, entry)
            summary = se.summarise(env, runs)
            if "mbpo" in runs and "sac" in runs:
                sac = [s["steps_to_threshold"] or s["budget"] for s in runs["sac"]]
                mbpo = [s["steps_to_threshold"] or s["budget"] for s in runs["mbpo"]]
                summary["sac_over_mbpo"] = se.ratio_interval(
                    np.array(sac, float), np.array(mbpo, float)
                )
            return {"runs": runs, "summary": summary}

        _save(args, "inverted_pendulum", merge)

    run_all(args.runs, configs, args, on_done)


def half_cheetah(args, console: Console) -> None:
    """Every HalfCheetah run as a trial of the benchmark sweep (--workers at once), then each
    run's numbers (and, for MBPO and loop runs, the controllers of `forethought evaluate`)."""
    steps = args.cheetah_steps
    configs = {
        config.out.name: config
        for seed in args.cheetah_seeds
        for method in args.cheetah_methods
        if (config := cheetah_config(method, seed, steps, args.runs, args.device))
    }
    runs = run_all(args.runs, configs, args)
    for seed in args.cheetah_seeds:
        for method in args.cheetah_methods:
            config = cheetah_config(method, seed, steps, args.runs, args.device)
            rows, seconds = runs[config.out.name]
            x, y = curves.curve(rows)
            entry = {
                "seed": seed,
                "final_eval_return": curves.last_step_mean(x.tolist(), y.tolist()),
                "seconds": seconds,  # the run's last attempt (a resumed run: after the kill)
                "cpu_seconds": curves.run_cpu_seconds(rows),
                "ms_per_action_median": _ms_per_action(rows),
                "curve_steps": x.tolist(),
                "curve_returns": y.tolist(),
            }
            final = entry["final_eval_return"]
            console.print(f"HalfCheetah-v5 {method} seed {seed}: {final:.1f} ({seconds:.0f} s)")
            report = _controllers(args, method, config.out.parent / "trials" / config.out.name)
            _save(args, "half_cheetah", _cheetah_merge(steps, method, entry, report))


def _controllers(args, method: str, run_dir: Path) -> dict | None:
    """What `forethought evaluate` measures on an MBPO or loop run: the policy alone, plain and
    guided MPC and the switching hybrid (the loops that learn from imagined data: the policy
    alone); with --cheetah-shield also the policy under the shield, and every controller's
    cost."""
    if method not in ("mbpo", *LOOP_METHODS):
        return None
    evaluate = EvaluateArgs(run_dir=run_dir, episodes=5, quiet=True, shield=args.cheetah_shield,
                            shield_planner=args.shield_planner)  # fmt: skip
    if method in IMAGINED_LOOP_METHODS:
        evaluate = replace(evaluate, controllers=("policy",))
    if args.quick:  # the smoke test checks the schema, not the numbers
        evaluate = replace(evaluate, episodes=2, mpc_horizon=10)
    return evaluate_controllers(evaluate, Console(quiet=True))


def _cheetah_merge(steps: int, method: str, entry: dict, report: dict | None):
    def merge(part: dict | None) -> dict:
        part = dict(part or {})
        budgets = dict(part.get("budgets", {}))
        if "budget" in part:  # one budget per file before budgets were keyed
            budgets[str(part.pop("budget"))] = {"runs": part.pop("runs", {})}
        at = dict(budgets.get(str(steps), {"runs": {}}))
        at["runs"] = _merged_runs(at["runs"], method, entry)
        at["summary"] = summarise_budget(at["runs"])
        budgets[str(steps)] = at
        part["budgets"] = budgets
        if report is not None:
            part.setdefault("controllers", {})[f"{method}-{steps}-seed{entry['seed']}"] = report
        return part

    return merge


def summarise_budget(runs: dict[str, list[dict]]) -> dict:
    """Per method at one step budget: the mean, spread and IQM (95% bootstrap interval) of the
    final evaluation return over seeds, and how it stands against MBPO on shared seeds."""
    out = {}
    for method, rows in runs.items():
        finals = np.array([s["final_eval_return"] for s in rows], dtype=float)
        out[method] = {
            "seeds": [s["seed"] for s in rows],
            "final_eval_return_mean": float(finals.mean()),
            "final_eval_return_std": float(finals.std()),
            "final_eval_return_iqm": se.iqm_with_interval(finals),
        }
        if method != "mbpo" and runs.get("mbpo"):
            out[method]["against_mbpo"] = against(rows, runs["mbpo"])
    return out


def against(ours: list[dict], reference: list[dict]) -> dict | None:
    """`ours` against `reference` on the seeds both ran: on how many seeds it is at or above,
    the mean paired difference of final returns with a 95% bootstrap interval over those seeds
    (own generator, as in `se.iqm_with_interval`), and rliable's probability of improvement:
    P(our return > the reference's) over all pairs of the two methods' runs."""
    from rliable import metrics

    theirs = {s["seed"]: s["final_eval_return"] for s in reference}
    shared = [s for s in ours if s["seed"] in theirs]
    if not shared:
        return None
    ours_at = np.array([s["final_eval_return"] for s in shared], dtype=float)
    ref_at = np.array([theirs[s["seed"]] for s in shared], dtype=float)
    diff, rng = ours_at - ref_at, np.random.default_rng(0)
    draws = [rng.choice(diff, len(diff)).mean() for _ in range(se.BOOTSTRAP)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {
        "seeds": [s["seed"] for s in shared],
        "at_or_above": int((diff >= 0).sum()),
        "mean_difference": float(diff.mean()),
        "mean_difference_ci95": [float(lo), float(hi)],
        "probability_of_improvement": float(
            metrics.probability_of_improvement(_finals(ours), _finals(reference))
        ),
    }


def cheetah_markdown(part: dict, interim: int = 20_000) -> str:
    """The README's HalfCheetah tables: per budget, every seed's final return (bold where at or
    above MBPO's on the same seed); the summaries against MBPO; and, for the longest budget's
    runs, each one's latest evaluation at `interim` steps, so one agent is read at both points."""
    budgets = sorted(part.get("budgets", {}), key=int)
    if not budgets:
        return "(no HalfCheetah runs)"
    seeds = sorted({s["seed"] for b in budgets for rows in part["budgets"][b]["runs"].values()
                    for s in rows})  # fmt: skip
    head = "| steps | method | " + " | ".join(f"seed {k}" for k in seeds)
    finals = [head + " | CPU s per run (median) | ms per action (median) |",
              "|---" * (len(seeds) + 4) + "|"]  # fmt: skip
    for budget in budgets:
        runs = part["budgets"][budget]["runs"]
        for method, rows in _ordered(runs):
            cells = _seed_cells(rows, None if method == "mbpo" else runs.get("mbpo"), seeds)
            cpu = _median([s.get("cpu_seconds") for s in rows])
            ms = _median([s.get("ms_per_action_median") for s in rows])
            finals.append(f"| {int(budget):,} | {method} | {cells} | {_number(cpu, ',.0f')} "
                          f"| {_number(ms, '.1f')} |")  # fmt: skip
    longest = part["budgets"][budgets[-1]]["runs"]
    at_interim = {m: [{"seed": s["seed"], "final_eval_return": _latest(s, interim)} for s in rows]
                  for m, rows in longest.items()}  # fmt: skip
    early = [head + " | mean | at or above MBPO |", "|---" * (len(seeds) + 4) + "|"]
    reference = {s["seed"]: s["final_eval_return"] for s in at_interim.get("mbpo", [])}
    for method, rows in _ordered(at_interim):
        shared = [s for s in rows if s["seed"] in reference and method != "mbpo"]
        wins = sum(s["final_eval_return"] >= reference[s["seed"]] for s in shared)
        above = f"{wins} of {len(shared)}" if shared else "-"
        cells = _seed_cells(rows, None if method == "mbpo" else at_interim.get("mbpo"), seeds)
        mean = np.nanmean([s["final_eval_return"] for s in rows])
        early.append(f"| {interim:,} of {int(budgets[-1]):,} | {method} | {cells} "
                     f"| {mean:.1f} | {above} |")  # fmt: skip
    tables = [finals, _summary_table(part, budgets), early, _policy_table(part, budgets, seeds)]
    return "\n\n".join("\n".join(table) for table in tables)


def _policy_table(part: dict, budgets: list[str], seeds: list[int]) -> list[str]:
    """Each loop run's SAC actor acting alone (`forethought evaluate`, the `controllers` of the
    results): the control for what the planner adds when it acts."""
    reports = part.get("controllers", {})
    lines = ["| steps | policy alone of | " + " | ".join(f"seed {k}" for k in seeds) + " | mean |",
             "|---" * (len(seeds) + 3) + "|"]  # fmt: skip
    for budget in budgets:
        for method, _ in _ordered(part["budgets"][budget]["runs"]):
            alone = {k: reports.get(f"{method}-{budget}-seed{k}", {}).get("policy") for k in seeds}
            values = {k: r["eval_return"] for k, r in alone.items() if r}
            if method not in LOOP_METHODS or not values:
                continue
            cells = " | ".join(_number(values.get(k), ".1f") for k in seeds)
            mean = np.mean(list(values.values()))
            lines.append(f"| {int(budget):,} | {method} | {cells} | {mean:.1f} |")
    return lines


def _summary_table(part: dict, budgets: list[str]) -> list[str]:
    lines = ["| steps | method | seeds | mean ± std | IQM [95%] | at or above MBPO "
             "| paired difference [95%] | P(better than MBPO) |", "|---" * 8 + "|"]  # fmt: skip
    for budget in budgets:
        summary = part["budgets"][budget].get("summary") or {}
        for method, row in _ordered(summary):
            iqm, versus = row["final_eval_return_iqm"], row.get("against_mbpo")
            lo, hi = iqm["iqm_ci95"]
            cells = [f"{int(budget):,}", method, _seed_span(row["seeds"]),
                     f"{row['final_eval_return_mean']:.1f} ± {row['final_eval_return_std']:.1f}",
                     f"{iqm['iqm']:.1f} [{lo:.1f}, {hi:.1f}]", "-", "-", "-"]  # fmt: skip
            if versus:
                d_lo, d_hi = versus["mean_difference_ci95"]
                cells[5:] = [f"{versus['at_or_above']} of {len(versus['seeds'])}",
                             f"{versus['mean_difference']:+.1f} [{d_lo:+.1f}, {d_hi:+.1f}]",
                             f"{versus['probability_of_improvement']:.2f}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ordered(by_method: dict) -> list[tuple[str, object]]:
    """MBPO first (the reference), then SAC and TD3, then the loop variants in LOOP_METHODS order."""
    order = ["mbpo", "sac", "td3", *LOOP_METHODS]
    return sorted(by_method.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)


def _seed_cells(rows: list[dict], reference: list[dict] | None, seeds: list[int]) -> str:
    """One cell per seed; bold where at or above `reference` (MBPO) on that seed."""
    mine = {s["seed"]: s["final_eval_return"] for s in rows}
    theirs = {s["seed"]: s["final_eval_return"] for s in reference or []}
    cells = []
    for seed in seeds:
        value, text = mine.get(seed), _number(mine.get(seed), ".1f")
        above = value is not None and seed in theirs and value >= theirs[seed]
        cells.append(f"**{text}**" if above else text)
    return " | ".join(cells)


def _latest(run: dict, step: int) -> float:
    """The run's latest evaluation at or before `step` (NaN before its first)."""
    return float(curves.on_grid(run, np.array([step]))[0])


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None or np.isnan(value) else format(value, spec)


def _median(values: list) -> float:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else float("nan")


def _seed_span(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _finals(rows: list[dict]) -> np.ndarray:
    return np.array([[s["final_eval_return"]] for s in rows], dtype=float)  # runs x 1 task


def _resummarised(part: dict | None) -> dict:
    part = dict(part or {})
    for at in part.get("budgets", {}).values():
        at["summary"] = summarise_budget(at["runs"])
    return part


def _merged_runs(runs: dict, method: str, entry: dict) -> dict:
    """`runs` with `entry` replacing any older entry of the same method and seed."""
    runs = dict(runs)
    others = [s for s in runs.get(method, []) if s["seed"] != entry["seed"]]
    runs[method] = sorted([*others, entry], key=lambda s: s["seed"])
    return runs


def _save(args, part: str, merge) -> None:
    """Re-read the results file and rewrite `part` with one more run merged in: written after
    every run, so a killed benchmark keeps what it finished and two invocations (one per part)
    can run side by side."""
    on_disk = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = {
        "benchmark": "mujoco",
        "quick": args.quick,
        "machine": machine_info(),
        "device": args.device,
        "inverted_pendulum": on_disk.get("inverted_pendulum"),
        "half_cheetah": on_disk.get("half_cheetah"),
    }
    results[part] = merge(on_disk.get(part))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(f".{part}.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(args.out)
    if results["half_cheetah"]:
        plot_half_cheetah(
            results["half_cheetah"], args.out.with_name(args.out.stem + "_cheetah.png")
        )


CHEETAH_COLOURS = {
    "sac": "tab:orange",
    "td3": "tab:pink",
    "mbpo": "tab:purple",
    "loop": "tab:brown",
    "loop-imagined": "tab:blue",
    "loop-explore": "tab:green",
    "loop-g10": "tab:red",
    "loop-anchor": "tab:cyan",
    "loop-anchor-critic": "tab:olive",
    "loop-anchor-sampled": "tab:gray",
}


def plot_half_cheetah(part: dict, path: Path) -> None:
    """One panel per step budget: every run's evaluation curve as a thin line and each
    method's mean over seeds (each run's latest evaluation at that step) as a thick one."""
    budgets = sorted(part.get("budgets", {}), key=int)
    if not budgets:
        return
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.6), dpi=110,
                             squeeze=False)  # fmt: skip
    for ax, budget in zip(axes[0], budgets, strict=True):
        for method, seeds in part["budgets"][budget]["runs"].items():
            colour = CHEETAH_COLOURS.get(method)
            for run in seeds:
                ax.plot(run["curve_steps"], run["curve_returns"], color=colour, lw=0.7, alpha=0.5)
            grid = np.unique(np.concatenate([run["curve_steps"] for run in seeds]))
            mean = np.nanmean([curves.on_grid(run, grid) for run in seeds], axis=0)
            ax.plot(grid, mean, color=colour, lw=2.0, label=f"{method} ({len(seeds)} seeds)")
        ax.set_title(f"HalfCheetah-v5, {int(budget):,} steps")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return (5 episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("thin: one seed; thick: mean over seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ms_per_action(rows: list[dict]) -> float | None:
    values = [r["ms_per_action"] for r in rows if r.get("ms_per_action") is not None]
    return float(np.median(values)) if values else None


if __name__ == "__main__":
    sys.exit(main())
