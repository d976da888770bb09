"""d3rlpy's side of benchmarks/offline.py: train one model-free offline algorithm on one exported
dataset and score it on the real environment. Runs in d3rlpy's own virtual environment
(d3rlpy pins gymnasium 1.0.0; see setup_d3rlpy.sh), never imports forethought.

    python d3rlpy_bench.py SPEC.json OUT.json

SPEC: {"dataset": npz path (observations, actions, rewards, terminals, timeouts), "env": id,
"algo": cql | iql | td3+bc, "steps": gradient steps, "eval_every": steps, "seed": int,
"eval_seeds": [int, ...]}. OUT: evaluation returns after every `eval_every` steps. After each
evaluation the run saves OUT.checkpoint/ and prints a progress line; a killed run started again
resumes there and ends as an uninterrupted one would (same weights, counter, random states).
Hyperparameters are d3rlpy's defaults, plus state standardisation for TD3+BC (as its paper).
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
import sys
import time
from pathlib import Path

import d3rlpy
import gymnasium as gym
import numpy as np
import structlog
import torch

# d3rlpy logs every fit's settings and metrics; this script prints one progress line per evaluation.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def make_algo(name: str):
    scaler = d3rlpy.preprocessing.StandardObservationScaler()
    configs = {
        "cql": d3rlpy.algos.CQLConfig(),
        "iql": d3rlpy.algos.IQLConfig(),
        "td3+bc": d3rlpy.algos.TD3PlusBCConfig(observation_scaler=scaler),
    }
    return configs[name].create(device="cpu:0")


def evaluate(algo, env_id: str, seeds: list[int]) -> list[float]:
    """Deterministic actions, all episodes in lock-step (one batched predict per step)."""
    envs = [gym.make(env_id) for _ in seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    returns = np.zeros(len(envs))
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        actions = algo.predict(obs[rows].astype(np.float32))
        for row, action in zip(rows, actions, strict=True):
            next_obs, reward, terminated, truncated, _ = envs[row].step(action)
            returns[row] += float(reward)
            obs[row] = next_obs
            active[row] = not (terminated or truncated)
    return returns.tolist()


def save_checkpoint(folder: Path, algo, curve: list, seconds: float) -> None:
    """Weights, optimiser states, the gradient-step counter and the global RNG states d3rlpy
    samples from: a run resumed from here continues exactly as an uninterrupted one."""
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    algo.save_model(str(staging / "model.pt"))
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (d3rlpy samples batches from it)
        "torch": torch.get_rng_state(),
    }
    (staging / "rng.pkl").write_bytes(pickle.dumps(rng))
    (staging / "state.json").write_text(
        json.dumps({"curve": curve, "seconds": seconds, "grad_step": algo.grad_step})
    )
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def load_checkpoint(folder: Path, algo) -> tuple[list, float]:
    state = json.loads((folder / "state.json").read_text())
    algo.load_model(str(folder / "model.pt"))
    algo.set_grad_step(state["grad_step"])
    rng = pickle.loads((folder / "rng.pkl").read_bytes())
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])  # noqa: NPY002
    torch.set_rng_state(rng["torch"])
    return state["curve"], state["seconds"]


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    out = Path(sys.argv[2])
    checkpoint = out.with_name(out.name + ".checkpoint")
    d3rlpy.seed(spec["seed"])
    data = np.load(spec["dataset"])
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"],
        rewards=data["rewards"],
        terminals=data["terminals"],
        timeouts=data["timeouts"],
    )
    algo = make_algo(spec["algo"])
    algo.build_with_dataset(dataset)
    curve, seconds = load_checkpoint(checkpoint, algo) if checkpoint.exists() else ([], 0.0)
    done = curve[-1]["gradient_steps"] if curve else 0
    if done:
        print(f"{spec['algo']} seed {spec['seed']}: resumed at {done} gradient steps", flush=True)
    while done < spec["steps"]:
        start = time.perf_counter()
        chunk = min(spec["eval_every"], spec["steps"] - done)
        algo.fit(
            dataset,
            n_steps=chunk,
            n_steps_per_epoch=chunk,
            show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        )
        done += chunk
        returns = evaluate(algo, spec["env"], spec["eval_seeds"])
        curve.append({"gradient_steps": done, "eval_returns": returns})
        seconds += time.perf_counter() - start
        save_checkpoint(checkpoint, algo, curve, seconds)
        print(
            f"{spec['algo']} seed {spec['seed']}: {done}/{spec['steps']} gradient steps, "
            f"return {np.mean(returns):.1f}, {seconds:.0f} s",
            flush=True,
        )
    result = {"d3rlpy": d3rlpy.__version__, "gymnasium": gym.__version__, "curve": curve}
    out.write_text(json.dumps(result | {"seconds": seconds}))
    shutil.rmtree(checkpoint)


if __name__ == "__main__":
    main()
