"""Imagined-rollout throughput, forethought vs mbrl-lib's ModelEnv, and the matmul floor
(BENCHMARKS.md §3, issue 3). Writes benchmarks/results/imagination.json.

Setting (MBPO's): a batch of 100,000 start states, an ensemble of 7 Gaussian MLPs with 4 hidden
layers of 200 units, HalfCheetah's sizes (17-dim state, 6-dim action, learned reward), horizons
1 and 5, sampling from the predicted Gaussians. Transitions per second = imagined
(state, action) -> next-state steps produced per second; in every measured path each transition
is one row through one member.

- mbrl-lib: ModelEnv.reset + ModelEnv.step(sample=True) with numpy actions, as MBPO's rollouts do,
  propagation "random_model" (TS1) over MBPO's 5 elites (mbrl-lib requires the batch to divide
  by the members used; 100,000 does not divide by 7), MBPO's double-precision normaliser.
  Runs in its own venv (benchmarks/peers/setup_mbrl.sh) as a subprocess.
- forethought `imagine` (ts1 and tsinf): 100,002 imagined trajectories, as 14,286 start states
  with 7 particles each (imagine's particle layout needs a multiple of the 7 members; one
  particle per start state would need 100,000 to divide by 7), one candidate, learned reward:
  100,002 transitions per step, the same number as ModelEnv's.
- forethought `predict`: DynamicsModel.predict on 7 x 14,286 rows (100,002) plus the Gaussian
  sample, H steps, state fed back: the same work as one ModelEnv.step per step.
- floor: rows x multiply-adds per row x 2 / this machine's fp32 matmul throughput, measured with
  torch (a 2048^2 mm, and the config's own 7 x 14,286 x 200 x 200 batched matmul).

    python benchmarks/imagination.py            # full (about 10-15 minutes on 2 quiet cores)
    python benchmarks/imagination.py --quick    # fewer repetitions (a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from forethought.models.dynamics import DynamicsModel, ModelConfig
from forethought.rollout import RolloutConfig, imagine
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

RESULTS = Path(__file__).parent / "results" / "imagination.json"
BATCH = 100_000
OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah
ENSEMBLE, LAYERS, HIDDEN = 7, 4, 200
NUM_ELITES = 5  # MBPO's
HORIZONS = (1, 5)
ACTIVATION = "relu"  # mbrl-lib GaussianMLP's default, which the peer must use (BENCHMARKS.md)


def build_model() -> DynamicsModel:
    config = ModelConfig(
        ensemble_size=ENSEMBLE,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        probabilistic=True,
        activation=ACTIVATION,
    )
    model = DynamicsModel(OBS_DIM, ACTION_DIM, config, learn_reward=True)
    return model.eval()


def time_calls(fn, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - begin)
    return seconds


def forethought_side(warmup: int, repeats: int, variants: list[str]) -> dict:
    model = build_model()
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(BATCH, OBS_DIM, generator=gen)
    out: dict = {}
    for variant in variants:
        out[variant] = {}
        for horizon in HORIZONS:
            if variant == "predict":
                m = -(-BATCH // ENSEMBLE)  # 14,286 rows per member
                state0 = torch.randn(ENSEMBLE, m, OBS_DIM, generator=gen)
                actions = torch.rand(horizon, ENSEMBLE, m, ACTION_DIM, generator=gen) * 2 - 1
                rows = ENSEMBLE * m

                @torch.inference_mode()
                def call(state0=state0, actions=actions, horizon=horizon):
                    state = state0
                    for t in range(horizon):
                        pred = model.predict(state, actions[t])
                        noise = torch.randn(pred.next_obs_mean.shape, generator=gen)
                        state = pred.next_obs_mean + pred.next_obs_var.sqrt() * noise

            else:
                particles = ENSEMBLE
                config = RolloutConfig(particles=particles, propagation=variant, sample=True)
                config.validate(ENSEMBLE)
                starts = -(-BATCH // particles)  # 14,286 start states x 7 particles
                actions = torch.rand(starts, 1, horizon, ACTION_DIM, generator=gen) * 2 - 1
                rows = starts * particles

                @torch.inference_mode()
                def call(actions=actions, config=config, starts=starts):
                    # MBPO's rollouts need no per-step uncertainty, and ModelEnv computes none.
                    imagine(
                        model, start[:starts], actions, config, None, None, gen, uncertainty=False
                    )

            seconds = time_calls(call, warmup, repeats)
            transitions = rows * horizon
            rates = [transitions / s for s in seconds]
            out[variant][str(horizon)] = {
                "seconds": seconds,
                "transitions_per_call": transitions,
                "rows_per_call": transitions,
                "transitions_per_s": rates,
                "median_transitions_per_s": median(rates),
            }
            log(f"  forethought {variant} h={horizon}: {median(rates):,.0f} transitions/s")
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads, both sides"
    )
    parser.add_argument("--mbrl-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--skip-peer", action="store_true", help="measure forethought only")
    return parser.parse_args()


def config_record(warmup: int, repeats: int) -> dict:
    return {
        "batch_start_states": BATCH,
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "learned_reward": True,
        "ensemble_size": ENSEMBLE,
        "hidden_layers": LAYERS,
        "hidden_size": HIDDEN,
        "activation": ACTIVATION,
        "horizons": list(HORIZONS),
        "sample": True,
        "mbrl_propagation": "random_model",
        "mbrl_num_elites": NUM_ELITES,
        "mbrl_normalize_double_precision": True,
        "forethought_imagine_particles": ENSEMBLE,
        "forethought_imagine_start_states": -(-BATCH // ENSEMBLE),
        "warmup": warmup,
        "repeats": repeats,
    }


def matmul_floor(quick: bool, macs: int) -> tuple[dict, dict]:
    """This machine's matmul throughput, and the transitions per second it would allow."""
    log("matmul throughput")
    m = -(-BATCH // ENSEMBLE)
    shapes = {"mm_2048": (0, 2048, 2048, 2048), "config_bmm": (ENSEMBLE, m, HIDDEN, HIDDEN)}
    matmul = matmul_throughput(3 if quick else 7, shapes)
    peak = matmul["mm_2048"]["median_gflops"]
    layer = matmul["config_bmm"]["median_gflops"]
    log(f"  {peak:.1f} GFLOP/s (2048^2 mm), {layer:.1f} GFLOP/s (config's bmm)")
    floor = {
        "transitions_per_s": peak * 1e9 / (2 * macs),
        "transitions_per_s_at_config_bmm": layer * 1e9 / (2 * macs),
        "gflops_used": peak,
        "how": "matmul GFLOP/s (2048^2 mm median) / (2 x multiply-adds per row); one row per transition",
    }
    return matmul, floor


def mbrl_side(args: argparse.Namespace, warmup: int, repeats: int) -> dict:
    """mbrl-lib's rollouts at the same config, in its own virtual environment."""
    if args.skip_peer:
        return {"error": "skipped (--skip-peer)"}
    log("mbrl-lib")
    python, error = ensure_mbrl(args.mbrl_venv, log)
    if error:
        return {"error": error}
    spec = {
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "batch": BATCH,
        "ensemble_size": ENSEMBLE,
        "num_hidden_layers": LAYERS,
        "hidden_size": HIDDEN,
        "propagation": "random_model",
        "num_elites": NUM_ELITES,
        "double_norm": True,
        "horizons": list(HORIZONS),
        "warmup": warmup,
        "repeats": repeats,
    }
    peer = run_peer(python, "imagination", spec, args.threads, timeout=3600)
    if "error" not in peer:
        for row in peer["horizons"].values():
            row["transitions_per_s"] = [row["transitions_per_call"] / s for s in row["seconds"]]
            row["median_transitions_per_s"] = median(row["transitions_per_s"])
    log(f"  {peer.get('error') or 'ok'}")
    return peer


def summarise(results: dict, variants: list[str], floor: float) -> dict:
    """Per horizon: each side's transitions per second, over the floor and over each other."""
    summary: dict = {}
    for horizon in map(str, HORIZONS):
        row: dict = {"floor_transitions_per_s": floor}
        peer_rate = None
        if "error" not in results["mbrl"]:
            peer_rate = results["mbrl"]["horizons"][horizon]["median_transitions_per_s"]
            row["mbrl_transitions_per_s"] = peer_rate
        for variant in variants:
            rate = results["forethought"][variant][horizon]["median_transitions_per_s"]
            row[f"forethought_{variant}_transitions_per_s"] = rate
            row[f"forethought_{variant}_over_floor"] = rate / floor
            if peer_rate is not None:
                row[f"forethought_{variant}_over_mbrl"] = rate / peer_rate
        if peer_rate is not None:
            row["mbrl_over_floor"] = peer_rate / floor
        summary[horizon] = row
    return summary


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warmup, repeats = (1, 2) if args.quick else (1, 7)
    variants = ["ts1", "predict"] if args.quick else ["ts1", "tsinf", "predict"]
    started = time.perf_counter()
    macs = macs_per_row(OBS_DIM + ACTION_DIM, HIDDEN, LAYERS, 2 * (OBS_DIM + 1))
    results: dict = {
        "benchmark": "imagination",
        "machine": machine_info(),
        "quick": args.quick,
        "command": " ".join(["python", "benchmarks/imagination.py", *sys.argv[1:]]),
        "threads": {"forethought": torch.get_num_threads(), "mbrl": None},
        "config": config_record(warmup, repeats),
        "macs_per_row": macs,
        "load_average_1min": {"start": os.getloadavg()[0]},
    }
    results["matmul"], results["floor"] = matmul_floor(args.quick, macs)

    log("forethought")
    results["forethought"] = forethought_side(warmup, repeats, variants)
    results["load_average_1min"]["after_forethought"] = os.getloadavg()[0]
    results["mbrl"] = mbrl_side(args, warmup, repeats)
    if "error" not in results["mbrl"]:
        results["threads"]["mbrl"] = results["mbrl"]["torch_threads"]
    results["load_average_1min"]["end"] = os.getloadavg()[0]

    results["summary"] = summarise(results, variants, results["floor"]["transitions_per_s"])
    results["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["summary"], indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
