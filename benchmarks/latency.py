"""Decision latency at mbrl-lib's PETS example config, forethought vs mbrl-lib, and the matmul
floor (BENCHMARKS.md §2, issue 3). Writes benchmarks/results/latency.json.

Config (mbrl-lib's notebooks/pets_example.ipynb, continuous cartpole): an ensemble of 5 Gaussian
MLPs with 3 hidden layers of 200 units, TS-inf propagation with 20 particles, CEM with population
500, 5 iterations, elite ratio 0.1 (50 elites), momentum (alpha) 0.1, horizon 15, initial std a
quarter of the action range; 4-dim state, 1-dim action in [-1, 1]; cartpole's known reward
(1 while upright and on the track) and termination. Both sides use untrained, randomly initialised
models (the compute does not depend on the weights) and the same sequence of states; the
receding-horizon warm start is kept between actions, as in an episode. mbrl-lib's GaussianMLP uses
its default activation (ReLU, BENCHMARKS.md), so forethought's model uses ReLU too.

Measured: milliseconds for one `act` call (plan + return the first action), median over the
actions after a warm-up. The full run alternates the sides in 5 rounds of 10 actions (mbrl-lib's
side a fresh subprocess per round, each with its own warm-up), so a change in the shared
machine's load hits both alike; every round's median and load average is recorded. The floor: rows through the network per action
(population x iterations x particles x horizon = 750,000) x multiply-adds per row x 2 / this
machine's measured fp32 matmul throughput.

Not measured here: the "matched return" comparison of issue 3 (forethought's fastest config
whose return matches mbrl-lib's example config) needs a continuous-cartpole task in forethought.

    python benchmarks/latency.py            # full: 50 actions per side (about 3 min on 2 quiet cores)
    python benchmarks/latency.py --quick    # 3 actions per side (smoke test)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from forethought.agents.mpc import MPCAgent
from forethought.models.dynamics import DynamicsModel, ModelConfig
from forethought.planners import PlannerConfig, make_planner
from forethought.rollout import RolloutConfig
from forethought.tasks import TaskSpec
from machine import machine_info
from peers.harness import (
    DEFAULT_VENV,
    ensure_mbrl,
    log,
    macs_per_row,
    matmul_throughput,
    median,
    run_peer,
)

RESULTS = Path(__file__).parent / "results" / "latency.json"
OBS_DIM, ACTION_DIM = 4, 1
ENSEMBLE, LAYERS, HIDDEN = 5, 3, 200
POPULATION, ITERATIONS, ELITE_RATIO, ALPHA, HORIZON, PARTICLES = 500, 5, 0.1, 0.1, 15, 20
ELITES = math.ceil(POPULATION * ELITE_RATIO)
INIT_STD = 0.25  # mbrl-lib's CEM starts at variance (ub - lb)^2 / 16
ACTIVATION = "relu"
X_THRESHOLD, THETA_THRESHOLD = 2.4, 12 * 2 * math.pi / 360  # mbrl-lib's cartpole termination


def cartpole_termination(next_obs: torch.Tensor) -> torch.Tensor:
    x, theta = next_obs[..., 0], next_obs[..., 2]
    return (x.abs() >= X_THRESHOLD) | (theta.abs() >= THETA_THRESHOLD)


def cartpole_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor):
    return (~cartpole_termination(next_obs)).float()


def forethought_agent(seed: int = 0) -> MPCAgent:
    model = DynamicsModel(
        OBS_DIM,
        ACTION_DIM,
        ModelConfig(
            ensemble_size=ENSEMBLE,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            probabilistic=True,
            activation=ACTIVATION,
        ),
    ).eval()
    planner = make_planner(
        "cem",
        PlannerConfig(
            horizon=HORIZON,
            population=POPULATION,
            iterations=ITERATIONS,
            elites=ELITES,
            momentum=ALPHA,
            init_std=INIT_STD,
        ),
        lower=torch.full((ACTION_DIM,), -1.0),
        upper=torch.full((ACTION_DIM,), 1.0),
    )
    task = TaskSpec(
        env_id="cartpole_continuous (mbrl-lib)",
        reward_fn=cartpole_reward,
        termination_fn=cartpole_termination,
    )
    rollout = RolloutConfig(particles=PARTICLES, propagation="tsinf", sample=True)
    agent = MPCAgent(model, planner, task, rollout, seed=seed)
    agent.reset()
    return agent


def time_actions(agent: MPCAgent, states: np.ndarray) -> list[float]:
    seconds = []
    for obs in states:
        begin = time.perf_counter()
        action = agent.act(obs[None])
        seconds.append(time.perf_counter() - begin)
        assert action.shape == (1, ACTION_DIM), action.shape
    return seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 actions per side (smoke test)")
    parser.add_argument("--actions", type=int, default=None, help="timed actions per side")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads, both sides"
    )
    parser.add_argument("--mbrl-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--skip-peer", action="store_true", help="measure forethought only")
    return parser.parse_args()


def config_record(warmup: int, actions: int, rounds: int) -> dict:
    return {
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "ensemble_size": ENSEMBLE,
        "hidden_layers": LAYERS,
        "hidden_size": HIDDEN,
        "activation": ACTIVATION,
        "propagation": "tsinf (mbrl-lib: fixed_model)",
        "particles": PARTICLES,
        "planner": "cem",
        "population": POPULATION,
        "iterations": ITERATIONS,
        "elite_ratio": ELITE_RATIO,
        "elites": ELITES,
        "alpha": ALPHA,
        "horizon": HORIZON,
        "init_std_fraction_of_range": INIT_STD,
        "reward": "mbrl-lib cartpole (1 while not terminated)",
        "warmup_actions": warmup,
        "timed_actions": actions,
        "rounds": rounds,
    }


def peer_spec(warmup: int) -> dict:
    """The same config in mbrl-lib's terms."""
    return {
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "ensemble_size": ENSEMBLE,
        "num_hidden_layers": LAYERS,
        "hidden_size": HIDDEN,
        "propagation": "fixed_model",
        "horizon": HORIZON,
        "iterations": ITERATIONS,
        "elite_ratio": ELITE_RATIO,
        "population": POPULATION,
        "alpha": ALPHA,
        "particles": PARTICLES,
        "warmup": warmup,  # each round is a fresh process, so each warms up
    }


def matmul_floor(quick: bool, rows_per_action: int, macs: int) -> tuple[dict, dict]:
    """This machine's matmul throughput, and the milliseconds per action it would allow."""
    log("matmul throughput")
    shapes = {
        "mm_2048": (0, 2048, 2048, 2048),
        "config_bmm": (ENSEMBLE, POPULATION * PARTICLES // ENSEMBLE, HIDDEN, HIDDEN),
    }
    matmul = matmul_throughput(3 if quick else 7, shapes)
    peak = matmul["mm_2048"]["median_gflops"]
    layer = matmul["config_bmm"]["median_gflops"]
    log(f"  {peak:.1f} GFLOP/s (2048^2 mm), {layer:.1f} GFLOP/s (config's bmm)")
    flops = 2.0 * rows_per_action * macs
    floor = {
        "ms_per_action": flops / (peak * 1e9) * 1e3,
        "ms_per_action_at_config_bmm": flops / (layer * 1e9) * 1e3,
        "gflops_used": peak,
        "flops_per_action": flops,
        "how": "rows per action x 2 x multiply-adds per row / matmul GFLOP/s (2048^2 mm median)",
    }
    return matmul, floor


def peer_round(python, chunk: np.ndarray, spec: dict, threads: int, peer: dict) -> str | None:
    """One round of mbrl-lib's side in a fresh process, appended to `peer`; its error if any."""
    n = len(chunk)
    out = run_peer(python, "latency", {**spec, "states": chunk.tolist(), "actions": n},
                   threads, timeout=3600)  # fmt: skip
    if "error" in out:
        log(f"  mbrl-lib: {out['error']}")
        return out["error"]
    peer["seconds"] += out["seconds"]
    peer["rounds"].append(
        {"actions": n, "median_ms": median(out["seconds"]) * 1e3, "load_1min": os.getloadavg()[0]}
    )
    for key in ("torch_threads", "versions", "python"):
        peer[key] = out[key]
    return None


def alternate_sides(args, states: np.ndarray, warmup: int, rounds: int) -> tuple[dict, dict]:
    """Time both sides over the same states, alternating in rounds so that a change in the
    machine's load hits both alike: forethought's timings and mbrl-lib's (or its error)."""
    actions = len(states) - warmup
    sizes = [actions // rounds + (i < actions % rounds) for i in range(rounds)]
    log(f"forethought: {warmup} warm-up actions")
    agent = forethought_agent()
    time_actions(agent, states[:warmup])
    python, peer_error = None, "skipped (--skip-peer)" if args.skip_peer else None
    if not args.skip_peer:
        python, peer_error = ensure_mbrl(args.mbrl_venv, log)
    fore = {"seconds": [], "rounds": []}
    peer: dict = {"seconds": [], "rounds": []}
    rows_before, offset = agent.compute.model_rows, warmup
    for r, n in enumerate(sizes):
        chunk = states[offset : offset + n]
        seconds = time_actions(agent, chunk)
        fore["seconds"] += seconds
        fore["rounds"].append(
            {"actions": n, "median_ms": median(seconds) * 1e3, "load_1min": os.getloadavg()[0]}
        )
        log(f"  round {r + 1}/{rounds}: forethought {median(seconds) * 1e3:.0f} ms")
        if peer_error is None:
            peer_error = peer_round(python, chunk, peer_spec(warmup), args.threads, peer)
            if peer_error is None:
                ms = peer["rounds"][-1]["median_ms"]
                log(f"  round {r + 1}/{rounds}: mbrl-lib {ms:.0f} ms")
        offset += n
    fore["model_rows_per_action"] = (agent.compute.model_rows - rows_before) / actions
    fore["ms"] = [s * 1e3 for s in fore["seconds"]]
    fore["median_ms"] = median(fore["ms"])
    log(f"forethought: {fore['median_ms']:.1f} ms per action")
    if peer_error is not None:
        return fore, {"error": peer_error}
    peer["ms"] = [s * 1e3 for s in peer["seconds"]]
    peer["median_ms"] = median(peer["ms"])
    log(f"mbrl-lib: {peer['median_ms']:.1f} ms per action")
    return fore, peer


def summarise(fore: dict, peer: dict, floor_ms: float) -> dict:
    summary = {
        "forethought_ms": fore["median_ms"],
        "floor_ms": floor_ms,
        "forethought_over_floor": fore["median_ms"] / floor_ms,
    }
    if "error" not in peer:
        summary["mbrl_ms"] = peer["median_ms"]
        summary["mbrl_over_forethought"] = peer["median_ms"] / fore["median_ms"]
        summary["mbrl_over_floor"] = peer["median_ms"] / floor_ms
    return summary


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warmup = 1 if args.quick else 3
    rounds = 1 if args.quick else 5
    actions = args.actions or (3 if args.quick else 50)
    started = time.perf_counter()
    # The same states for both sides: small perturbations around upright, as in a balanced episode.
    noise = np.random.default_rng(0).standard_normal((warmup + actions, OBS_DIM))
    states = (noise * 0.05).astype(np.float32)
    rows_per_action = POPULATION * ITERATIONS * PARTICLES * HORIZON
    macs = macs_per_row(OBS_DIM + ACTION_DIM, HIDDEN, LAYERS, 2 * OBS_DIM)
    results: dict = {
        "benchmark": "latency",
        "machine": machine_info(),
        "quick": args.quick,
        "command": " ".join(["python", "benchmarks/latency.py", *sys.argv[1:]]),
        "threads": {"forethought": torch.get_num_threads(), "mbrl": None},
        "config": config_record(warmup, actions, rounds),
        "rows_per_action": rows_per_action,
        "macs_per_row": macs,
        "matched_return": "not measured: needs a continuous-cartpole task in forethought",
        "load_average_1min": {"start": os.getloadavg()[0]},
    }
    results["matmul"], results["floor"] = matmul_floor(args.quick, rows_per_action, macs)
    results["forethought"], results["mbrl"] = alternate_sides(args, states, warmup, rounds)
    if "error" not in results["mbrl"]:
        results["threads"]["mbrl"] = results["mbrl"]["torch_threads"]
    results["load_average_1min"]["end"] = os.getloadavg()[0]
    summary = summarise(results["forethought"], results["mbrl"], results["floor"]["ms_per_action"])
    results["summary"] = summary
    results["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
