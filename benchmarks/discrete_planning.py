"""Tree search vs discrete CEM on one learned CartPole-v1 model, at matched model compute
(issue 16). Writes benchmarks/results/discrete_planning.json and .png.

One model is learned once: `forethought train --env CartPole-v1 --planner mcts` for
`--train-steps` steps (kept under benchmarks/.runs/, reused when present). Its final ensemble
(and, for tree search, its learned state value) then plans for every configuration below on the
same 10 evaluation episodes (seeds 1000-1009, all planned in one batch), so the planners differ
and nothing else:

- MCTS (Gumbel root, learned value at the leaves) with 4 to 128 simulations;
- MCTS without the learned value (random rollouts at the leaves instead): what the value buys;
- MCTS on the members' mean predictions instead of sampled next states, and without the Gumbel
  noise at the root: how much of the search's choice is noise;
- MCTS with the state value fitted afresh on the same data, three fit seeds: the spread of the
  value fit alone, the yardstick for every difference above;
- the same fresh fits with the tree's and the value's discount at 0.95 to 0.999 instead of 0.99;
- MCTS in waves of 4 to 32 simulations per model call (virtual loss), against the same
  simulation count one call each: return and time for fewer, larger calls;
- discrete CEM at several horizons and populations, including settings whose model rows per
  action are close to the tree's.

Per configuration: mean and std of the evaluation return, model rows per action (the rows pushed
through the ensemble: members x inputs, counted by the agents; tree search also evaluates the
small value network once per new node, not counted), milliseconds per action (planning time over
all steps divided by the actions taken, so amortised over the batch of running episodes), and
the median milliseconds of one batched step while all episodes still run, and milliseconds
per action planning for one episode alone (its first 100 steps; training acts this way).
Timings compare within one invocation only (`--configs` measures a subset and merges it into
the results file; each entry records the load average it ran under).

    python benchmarks/discrete_planning.py            # full (about 25 min on 2 cores)
    python benchmarks/discrete_planning.py --quick    # 2 configurations, 2 short episodes
    python benchmarks/discrete_planning.py --configs mcts-32 mcts-32-waves-4 mcts-32-waves-8
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from rich.console import Console

from forethought.agents.build import build_mpc_agent
from forethought.config import TrainConfig
from forethought.data.buffer import ReplayBuffer
from forethought.models.value import StateValue, ValueTrainer
from forethought.planners import PlannerConfig
from forethought.planners.mcts import TreeSearchConfig
from forethought.runtime import configure_cpu
from forethought.storage import atomic_write_text, read_metrics
from forethought.tasks import make_env, vector_actions
from forethought.tasks.episodes import evaluate_batched
from forethought.trainers.run_dir import RunDir
from machine import machine_info
from runs import run_once

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "discrete_planning.json"
RUNS = HERE / ".runs" / "discrete_planning"
ENV = "CartPole-v1"

MCTS = {f"mcts-{n}": TreeSearchConfig(simulations=n) for n in (4, 8, 16, 32, 64, 128)}
MCTS["mcts-32-no-value-rollouts-20"] = TreeSearchConfig(simulations=32, rollout_steps=20)
# Where the root's noise comes from: members' means instead of sampled next states, and the
# root's choice without Gumbel noise (the prior's top actions, then the best completed q).
MCTS["mcts-32-mean-model"] = TreeSearchConfig(simulations=32, sample=False)
MCTS["mcts-32-no-gumbel-noise"] = TreeSearchConfig(simulations=32, gumbel_scale=0.0)
# The same search with the state value fitted afresh on the run's data (seed k of the fit)
# instead of the run's own value, which was refitted from its previous weights after every
# episode: how much of a return is the value fit's luck rather than the planner's.
REFITS = {f"mcts-32-value-refit-{k}": k for k in range(3)}
MCTS |= {name: TreeSearchConfig(simulations=32) for name in REFITS}
# The discount of the tree and of the freshly fitted value (default 0.99), three fit seeds each:
# how far ahead the value should look when the task ends by a slow drift (CartPole's cart runs
# off its rail over ~150 steps).
DISCOUNTS = (0.95, 0.97, 0.98, 0.995, 0.999)
for _discount in DISCOUNTS:
    for _k in range(3):
        _name = f"mcts-32-discount-{_discount}-refit-{_k}"
        REFITS[_name] = _k
        MCTS[_name] = TreeSearchConfig(simulations=32, discount=_discount)
# Waves of simulations (virtual loss): the same simulations in fewer, larger model calls.
MCTS |= {
    f"mcts-{n}-waves-{k}": TreeSearchConfig(simulations=n, parallel_simulations=k)
    for n, k in ((32, 4), (32, 8), (128, 8), (128, 32))
}
CEM = {
    f"dcem-h{h}-p{p}-i{i}": PlannerConfig(horizon=h, population=p, elites=max(2, p // 10), iterations=i)
    for h, p, i in ((8, 4, 1), (8, 8, 2), (20, 20, 2), (40, 20, 3), (40, 100, 3))
}  # fmt: skip


def learned_run(steps: int, seed: int) -> Path:
    """The run whose final model every configuration plans with."""
    out = RUNS / f"{ENV}-mcts-{steps}-seed{seed}"
    config = TrainConfig(
        env=ENV, planner="mcts", steps=steps, episodes=10_000, seed=seed, out=out, quiet=True
    )
    run_once(config)  # a trial of the sweep in RUNS: reused when finished, resumed when killed
    return RUNS / "trials" / out.name


def model_identity(run: Path) -> dict:
    """Which model the configurations plan with: its last training row and a digest of the
    ensemble's and the value's weights. A subset (--configs) joins earlier results only when
    this matches, so one results file never mixes two models."""
    checkpoint = RunDir(run).load_checkpoint()
    digest = hashlib.sha256()
    for part in ("model", "value"):
        for name, tensor in sorted((checkpoint.get(part) or {}).items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    last = [r for r in read_metrics(run / "metrics.jsonl") if "eval_return" in r][-1]
    return {
        "env_steps": last["env_steps"],
        "eval_return": last["eval_return"],
        "weights_sha256": digest.hexdigest()[:16],
    }


def evaluate(run: Path, name: str, episodes: int, max_steps: int | None) -> dict:
    """Plan with configuration `name` on the run's final model, for `episodes` episodes."""
    directory, base = RunDir.open(run)
    directory.close()
    config = _configured(base, name, max_steps)
    env = vector_actions(make_env(ENV, **config.make_kwargs()))
    _, model, agent = build_mpc_agent(config, env)
    checkpoint = RunDir(run).load_checkpoint()
    model.load_state_dict(checkpoint["model"])
    if getattr(agent, "state_value", None) is not None:
        agent.state_value.load_state_dict(checkpoint["value"])
        if name in REFITS:
            refit_value(agent.state_value, config, checkpoint, REFITS[name])
    envs = [vector_actions(make_env(ENV, **config.make_kwargs())) for _ in range(episodes)]
    seconds, actions_taken = [], []

    def timed(obs, rows):
        start = time.perf_counter()
        actions = agent.act(obs, rows)
        seconds.append(time.perf_counter() - start)
        actions_taken.append(len(obs))
        return actions

    returns = evaluate_batched(envs, timed, [1000 + j for j in range(episodes)])
    full = [s for s, n in zip(seconds, actions_taken, strict=True) if n == episodes]
    rows, calls, acted = agent.compute.model_rows, agent.compute.model_calls, sum(actions_taken)
    batched_seconds, batched_steps = sum(seconds), len(seconds)
    seconds.clear()
    alone = dataclasses.replace(config, max_episode_steps=min(100, max_steps or 100))
    evaluate_batched([vector_actions(make_env(ENV, **alone.make_kwargs()))], timed, [1000])
    return {
        "returns": returns.tolist(),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "model_rows_per_action": rows / acted,
        "model_calls_per_batched_step": calls / batched_steps if calls else None,
        "ms_per_action": 1000 * batched_seconds / acted,
        "ms_per_batched_step_all_running": 1000 * float(np.median(full)) if full else None,
        "ms_per_action_one_episode": 1000 * float(np.mean(seconds)),
        "load_average": os.getloadavg()[0],
        "planner": config.planner,
        "settings": dataclasses.asdict(
            config.mcts if config.planner == "mcts" else config.planning
        ),
    }


def refit_value(value: StateValue, config: TrainConfig, checkpoint: dict, seed: int) -> None:
    """Fit `value` from fresh weights (torch seed `seed`) on all of the run's transitions."""
    torch.manual_seed(seed)
    fresh = StateValue(value.obs_mean.numel(), config.value)
    trainer = ValueTrainer(fresh, config.value, config.mcts.discount)
    trainer.fit(
        ReplayBuffer.from_state_dict(checkpoint["buffer"]).all(), np.random.default_rng(seed)
    )
    value.load_state_dict(fresh.state_dict())


def _configured(base: TrainConfig, name: str, max_steps: int | None) -> TrainConfig:
    changes = {"max_episode_steps": max_steps}
    if name in MCTS:
        mcts = MCTS[name]
        uses_value = mcts.rollout_steps == 0
        changes |= {"planner": "mcts", "mcts": mcts}
        changes |= {"value": dataclasses.replace(base.value, enabled=uses_value)}
    else:
        changes |= {"planner": "discrete-cem", "planning": CEM[name]}
    return dataclasses.replace(base, **changes)


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=110)
    for name, entry in results["configs"].items():
        tree = name.startswith("mcts")
        ax.errorbar(
            entry["model_rows_per_action"], entry["mean_return"], yerr=entry["std_return"],
            fmt="o" if tree else "s", color="tab:blue" if tree else "tab:cyan", capsize=3,
        )  # fmt: skip
        ax.annotate(name, (entry["model_rows_per_action"], entry["mean_return"]), fontsize=6)
    ax.set_xscale("log")
    ax.set(xlabel="model rows per action (log)", ylabel="evaluation return (10 episodes)")
    ax.set_title(f"{ENV}: tree search (circles) vs discrete CEM (squares), one learned model")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 configurations, short episodes")
    parser.add_argument(
        "--configs", nargs="+", choices=[*MCTS, *CEM], default=None,
        help="measure only these and merge them into --out (default: all)",
    )  # fmt: skip
    parser.add_argument("--train-steps", type=int, default=1500, help="default 1500")
    parser.add_argument("--seed", type=int, default=0, help="seed of the learning run (0)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args()
    configure_cpu(1)
    torch.manual_seed(0)
    console = Console()
    steps = 300 if args.quick else args.train_steps
    run = learned_run(steps, args.seed)
    names = ["mcts-8", "dcem-h8-p8-i2"] if args.quick else args.configs or [*MCTS, *CEM]
    episodes, max_steps = (2, 50) if args.quick else (10, None)
    results = {
        "benchmark": "discrete_planning",
        "quick": args.quick,
        "machine": machine_info(),
        "env": ENV,
        "model_run": str(run),
        "train_steps": steps,
        "model": model_identity(run),
        "configs": {},
    }
    if args.configs and args.out.exists():  # a subset joins the configurations measured before
        earlier = json.loads(args.out.read_text())
        if earlier.get("model") == results["model"] and earlier["quick"] == args.quick:
            results["configs"] = earlier["configs"]
        else:
            console.print(f"{args.out} was measured on another model: starting it afresh")
    for name in names:
        entry = evaluate(run, name, episodes, max_steps)
        results["configs"][name] = entry
        console.print(
            f"{name}: return {entry['mean_return']:.1f} ± {entry['std_return']:.1f}, "
            f"{entry['model_rows_per_action']:.0f} model rows and {entry['ms_per_action']:.1f} ms "
            "per action"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(results, indent=1))  # kept as each config ends
    plot(results, args.out.with_suffix(".png"))
    console.print(f"results: {args.out}\nplot: {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
