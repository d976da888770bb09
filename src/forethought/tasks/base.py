"""Task specifications: what forethought knows about an environment beyond its spaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from forethought.errors import ConfigError, DataError
from forethought.rollout import RewardFn, TerminationFn


@dataclass(frozen=True)
class TaskSpec:
    """Known structure of one Gymnasium environment.

    `reward_fn(obs, action, next_obs)` and `termination_fn(next_obs)` work on tensors with any
    leading shape (... x O) and must equal the environment's own reward and termination; they
    are checked against real transitions in the tests. A task without them uses the model's
    learned reward and termination heads.
    """

    env_id: str
    reward_fn: RewardFn | None = None
    termination_fn: TerminationFn | None = None
    solved_return: float | None = None  # evaluation return that counts as "solved"


def never_terminates(next_obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gym.Env:
    """`gymnasium.make` with errors a user can act on."""
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        known = sorted(k for k in gym.registry if not k.startswith(("ALE/", "GymV")))[:12]
        raise ConfigError(
            "env",
            f"cannot make environment '{env_id}' ({exc}). Known ids include {', '.join(known)}, ...",
        ) from None
    except ImportError as exc:
        raise ConfigError(
            "env", f"environment '{env_id}' needs a package that is missing: {exc}"
        ) from None
    if seed is not None:
        env.action_space.seed(seed)
    return env


ActionKind = Literal["continuous", "discrete", "any"]


def check_spaces(env: gym.Env, env_id: str, method: str, actions: ActionKind, instead: str) -> None:
    """Refuse spaces `method` cannot handle; `actions` says which action spaces it acts in and
    `instead` names what to use for the others (one clause, e.g. "use --planner mcts")."""
    space = env.action_space
    box, discrete = isinstance(space, gym.spaces.Box), isinstance(space, gym.spaces.Discrete)
    if not (box or discrete):
        raise ConfigError(
            "env",
            f"'{env_id}' has a {type(space).__name__} action space; forethought acts in Box "
            "(continuous) and Discrete action spaces only (flatten or wrap the others)",
        )
    if (actions == "continuous" and not box) or (actions == "discrete" and not discrete):
        wanted = "continuous (Box)" if actions == "continuous" else "Discrete"
        raise ConfigError(
            "env",
            f"'{env_id}' has a {type(space).__name__} action space, but '{method}' acts in "
            f"{wanted} action spaces; {instead}",
        )
    if (
        not isinstance(env.observation_space, gym.spaces.Box)
        or len(env.observation_space.shape) != 1
    ):
        raise ConfigError(
            "env", f"'{env_id}' must have a flat Box observation space, got {env.observation_space}"
        )
    if box and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ConfigError("env", f"'{env_id}' has unbounded actions; planners need finite bounds")


def check_env(
    env_id: str, method: str, actions: ActionKind, instead: str, **make_kwargs
) -> int | None:
    """Make the environment once to refuse unusable spaces before anything is written to disk;
    returns its time limit."""
    env = make_env(env_id, **make_kwargs)
    try:
        check_spaces(env, env_id, method, actions, instead)
        return env.spec.max_episode_steps if env.spec else None
    finally:
        env.close()


def check_finite_obs(obs: np.ndarray, step: int, where: str) -> np.ndarray:
    """Return `obs` if every entry is finite, else raise an error naming the step."""
    if not np.all(np.isfinite(obs)):
        raise DataError(
            f"the environment returned a non-finite observation {np.asarray(obs).tolist()} "
            f"at {where} (environment step {step}); check the environment or its wrappers"
        )
    return obs
