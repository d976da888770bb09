"""The mbrl-lib side of benchmarks/imagination.py and benchmarks/latency.py.

Runs inside mbrl-lib's own virtual environment (benchmarks/peers/setup_mbrl.sh), never imports
forethought, and is started as a subprocess by the forethought-side scripts:

    MBRL_VENV/bin/python benchmarks/peers/mbrl_bench.py imagination SPEC.json OUT.json
    MBRL_VENV/bin/python benchmarks/peers/mbrl_bench.py latency SPEC.json OUT.json

SPEC.json holds the settings (threads, sizes, repetitions); OUT.json gets every raw timing.
Configurations follow mbrl-lib 0.2.0 with hydra-core 1.3.2 / omegaconf 2.3.0 (BENCHMARKS.md):
the agent config carries "_recursive_": False, and GaussianMLP keeps its default activation
(ReLU), since an activation config object is rejected under omegaconf 2.3.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata

import numpy as np
import torch


def _versions() -> dict:
    out = {}
    for package in ("mbrl", "torch", "numpy", "hydra-core", "omegaconf", "gymnasium"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def _box(dim: int, low: float = -1.0, high: float = 1.0):
    import gymnasium as gym

    return gym.spaces.Box(low=low, high=high, shape=(dim,), dtype=np.float32)


class _SpacesOnly:
    """What ModelEnv and complete_agent_cfg read from an environment: its two spaces."""

    def __init__(self, obs_dim: int, action_dim: int):
        self.observation_space = _box(obs_dim, -np.inf, np.inf)
        self.action_space = _box(action_dim)


def _one_dim_model(spec: dict, learned_rewards: bool, double_norm: bool):
    import mbrl.util.common as common_util
    import omegaconf

    cfg = omegaconf.OmegaConf.create(
        {
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "device": "cpu",
                "num_layers": spec["num_hidden_layers"],
                "ensemble_size": spec["ensemble_size"],
                "hid_size": spec["hidden_size"],
                "in_size": "???",
                "out_size": "???",
                "deterministic": False,
                "propagation_method": spec["propagation"],
                # activation_fn_cfg left out: GaussianMLP's default (ReLU), see module doc.
            },
            "algorithm": {
                "learned_rewards": learned_rewards,
                "target_is_delta": True,
                "normalize": True,
                "normalize_double_precision": double_norm,
            },
            "overrides": {},
        }
    )
    return common_util.create_one_dim_tr_model(cfg, (spec["obs_dim"],), (spec["action_dim"],))


def imagination(spec: dict) -> dict:
    """ModelEnv.step on a batch of start states, MBPO-style (mbrl/algorithms/mbpo.py)."""
    import mbrl.models as models

    obs_dim, action_dim, batch = spec["obs_dim"], spec["action_dim"], spec["batch"]
    model = _one_dim_model(spec, learned_rewards=True, double_norm=spec["double_norm"])
    if spec.get("num_elites"):
        model.set_elite(list(range(spec["num_elites"])))
    model.eval()
    generator = torch.Generator().manual_seed(0)
    env = models.ModelEnv(
        _SpacesOnly(obs_dim, action_dim),
        model,
        termination_fn=lambda act, next_obs: torch.zeros(
            next_obs.shape[0], 1, dtype=torch.bool
        ),  # HalfCheetah's no_termination
        reward_fn=None,  # learned rewards
        generator=generator,
    )
    rng = np.random.default_rng(0)
    start = rng.standard_normal((batch, obs_dim)).astype(np.float32)
    results = {}
    for horizon in spec["horizons"]:
        actions = rng.uniform(-1, 1, (horizon, batch, action_dim)).astype(np.float32)

        def rollout(actions=actions, horizon=horizon):
            model_state = env.reset(start, return_as_np=True)
            for t in range(horizon):
                _, _, _, model_state = env.step(actions[t], model_state, sample=True)

        for _ in range(spec["warmup"]):
            rollout()
        seconds = []
        for _ in range(spec["repeats"]):
            begin = time.perf_counter()
            rollout()
            seconds.append(time.perf_counter() - begin)
        results[str(horizon)] = {
            "seconds": seconds,
            "transitions_per_call": batch * horizon,
            "rows_per_call": batch * horizon,
        }
    return {"horizons": results}


def latency(spec: dict) -> dict:
    """TrajectoryOptimizerAgent.act with CEM, as in mbrl-lib's PETS example notebook."""
    import mbrl.env.reward_fns as reward_fns
    import mbrl.env.termination_fns as termination_fns
    import mbrl.models as models
    import mbrl.planning as planning
    import omegaconf

    obs_dim, action_dim = spec["obs_dim"], spec["action_dim"]
    model = _one_dim_model(spec, learned_rewards=False, double_norm=False)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    env = models.ModelEnv(
        _SpacesOnly(obs_dim, action_dim),
        model,
        termination_fns.cartpole,
        reward_fns.cartpole,
        generator=generator,
    )
    agent_cfg = omegaconf.OmegaConf.create(
        {
            "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
            "_recursive_": False,  # Hydra >= 1.1 instantiates recursively by default
            "planning_horizon": spec["horizon"],
            "replan_freq": 1,
            "verbose": False,
            "action_lb": "???",
            "action_ub": "???",
            "optimizer_cfg": {
                "_target_": "mbrl.planning.CEMOptimizer",
                "num_iterations": spec["iterations"],
                "elite_ratio": spec["elite_ratio"],
                "population_size": spec["population"],
                "alpha": spec["alpha"],
                "device": "cpu",
                "lower_bound": "???",
                "upper_bound": "???",
            },
        }
    )
    agent = planning.create_trajectory_optim_agent_for_model(
        env, agent_cfg, num_particles=spec["particles"]
    )
    states = np.asarray(spec["states"], dtype=np.float32)
    agent.reset()
    for i in range(spec["warmup"]):
        agent.act(states[i % len(states)])
    seconds = []
    for i in range(spec["actions"]):
        begin = time.perf_counter()
        action = agent.act(states[i % len(states)])
        seconds.append(time.perf_counter() - begin)
    assert np.asarray(action).shape == (action_dim,), np.asarray(action).shape
    return {"seconds": seconds}


def main() -> int:
    task, spec_path, out_path = sys.argv[1:4]
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    result = {"imagination": imagination, "latency": latency}[task](spec)
    result["torch_threads"] = torch.get_num_threads()
    result["versions"] = _versions()
    result["python"] = platform.python_version()
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
