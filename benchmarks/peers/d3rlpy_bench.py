"""d3rlpy's side of benchmarks/offline.py: train one model-free offline algorithm on one exported
dataset and score it on the real environment. Runs in d3rlpy's own virtual environment
(d3rlpy pins gymnasium 1.0.0; see setup_d3rlpy.sh), never imports forethought.

    python d3rlpy_bench.py SPEC.json OUT.json

SPEC: {"dataset": npz path (observations, actions, rewards, terminals, timeouts), "env": id,
"algo": cql | iql | td3+bc, "steps": gradient steps, "eval_every": steps, "seed": int,
"eval_seeds": [int, ...]}. OUT: evaluation returns after every `eval_every` steps.
Hyperparameters are d3rlpy's defaults, plus state standardisation for TD3+BC (as its paper).
"""

from __future__ import annotations

import json
import sys
import time

import d3rlpy
import gymnasium as gym
import numpy as np


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


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
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
    curve = []
    start = time.perf_counter()
    done = 0
    while done < spec["steps"]:
        chunk = min(spec["eval_every"], spec["steps"] - done)
        algo.fit(
            dataset,
            n_steps=chunk,
            n_steps_per_epoch=chunk,
            show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        )
        done += chunk
        curve.append(
            {
                "gradient_steps": done,
                "eval_returns": evaluate(algo, spec["env"], spec["eval_seeds"]),
            }
        )
    out = {
        "d3rlpy": d3rlpy.__version__,
        "gymnasium": gym.__version__,
        "curve": curve,
        "seconds": time.perf_counter() - start,
    }
    open(sys.argv[2], "w").write(json.dumps(out))


if __name__ == "__main__":
    main()
