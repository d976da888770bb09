"""A policy to run from whatever produced it: `random`, a run directory, or one saved snapshot.

    random                          uniform random actions
    RUN_DIR                         the final policy of an --algo sac, td3 or mbpo run, or of an
                                    offline run (`forethought offline`: bc, mopo, morel)
    RUN_DIR/policies/step-N.pt      the policy an --keep-policies run had after N steps

Every policy maps a batch of observations to a batch of actions in environment units. For data
collection a policy may act stochastically (SAC samples from its Gaussian, as the behaviour
policies of D4RL's datasets did); evaluation and off-policy evaluation use the deterministic one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.storage import load_torch
from forethought.trainers.run_dir import RunDir

BatchPolicy = Callable[[np.ndarray], np.ndarray]  # B x O observations -> B x A actions


@dataclass
class LoadedPolicy:
    act: BatchPolicy
    label: str  # what it is, for tables: "random", "sac@20000", "mopo"


def load_policy(
    source: str | Path,
    action_space: gym.spaces.Box,
    *,
    deterministic: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> LoadedPolicy:
    """The policy named by `source` (see the module docstring); a one-line error otherwise."""
    if str(source) == "random":
        rng = np.random.default_rng(seed)

        def uniform(obs: np.ndarray) -> np.ndarray:
            shape = (len(obs), *action_space.shape)
            return rng.uniform(action_space.low, action_space.high, size=shape).astype(np.float32)

        return LoadedPolicy(uniform, "random")
    path = Path(source)
    if path.is_file() and path.suffix == ".pt" and path.parent.name == "policies":
        return _snapshot(path, deterministic, device)
    if not (path / "config.json").exists():
        raise ConfigError(
            "--policy",
            f"{source} is neither 'random', a run directory (no config.json there) nor a "
            "RUN_DIR/policies/step-N.pt snapshot",
        )
    from forethought.trainers.offline import is_offline_run, load_offline_policy

    if is_offline_run(path):
        act, label = load_offline_policy(path, device=device)
        return LoadedPolicy(act, label)
    return _sb3_run(path, deterministic, device)


def _sb3_run(run_dir: Path, deterministic: bool, device: str) -> LoadedPolicy:
    model, config = _sb3_model(run_dir, device)
    steps = int(model.num_timesteps)
    return LoadedPolicy(_acting(model, deterministic), f"{config.algo}@{steps}")


def _snapshot(path: Path, deterministic: bool, device: str) -> LoadedPolicy:
    run_dir = path.parent.parent
    model, config = _sb3_model(run_dir, device)
    state = load_torch(path)
    model.policy.actor.load_state_dict(state["actor"])
    return LoadedPolicy(_acting(model, deterministic), f"{config.algo}@{state['env_steps']}")


def _sb3_model(run_dir: Path, device: str):
    from forethought.trainers.sb3 import ALGORITHMS

    _, config = RunDir.open(run_dir, flag="--policy", lock=False)
    if config.algo not in ("sac", "td3", "mbpo"):
        raise ConfigError(
            "--policy",
            f"{run_dir} is an --algo {config.algo} run; a policy comes from an sac, td3, mbpo "
            "or offline run",
        )
    checkpoint = RunDir(run_dir).load_checkpoint()
    if checkpoint is None:
        raise ConfigError("--policy", f"{run_dir} has no checkpoint yet (nothing to load)")
    model = ALGORITHMS[config.algo].load(io.BytesIO(checkpoint["model"]), device=device)
    return model, config


def _acting(model, deterministic: bool) -> BatchPolicy:
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            action, _ = model.predict(obs, deterministic=deterministic)
        return action.astype(np.float32)

    return act


def policy_snapshots(run_dir: Path) -> list[Path]:
    """The policies a --keep-policies run saved, in order of training steps."""
    return sorted(RunDir(run_dir).policies_dir.glob("step-*.pt"))
