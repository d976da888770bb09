"""Discrete-action environments: one-hot actions for the model, and the known reward and
termination functions of Gymnasium's discrete classic-control tasks.

The dynamics ensemble, the buffer and the log all take an action *vector*. A Discrete(n) action
is therefore carried as its one-hot vector of length n from the agent to the log; only the
environment sees the integer. `OneHotActions` is that boundary.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from forethought.tasks.base import TaskSpec
from forethought.tasks.cartpole import THETA_THRESHOLD, X_THRESHOLD, cartpole_reward


class OneHotActions(gym.ActionWrapper):
    """Presents a Discrete(n) environment as one taking one-hot vectors in Box(0, 1, (n,)).

    The environment receives the index of the largest entry, so any vector in the box is a
    valid action; the agents in forethought always pass exact one-hot vectors, so what is logged
    is what was executed.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.n = int(env.action_space.n)
        self.action_space = gym.spaces.Box(0.0, 1.0, (self.n,), np.float32)

    def action(self, action: np.ndarray) -> int:
        return int(np.argmax(action))


def vector_actions(env: gym.Env) -> gym.Env:
    """`env` acting on vectors: a Discrete one behind `OneHotActions`, any other unchanged."""
    return OneHotActions(env) if isinstance(env.action_space, gym.spaces.Discrete) else env


def one_hot(indices: np.ndarray, n: int) -> np.ndarray:
    """Integer actions (any shape) -> float32 one-hot vectors (shape + (n,))."""
    return np.eye(n, dtype=np.float32)[np.asarray(indices)]


def is_discrete(env: gym.Env) -> bool:
    """Whether `env` acts on a Discrete space, directly or behind `OneHotActions`."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, OneHotActions):
            return True
        env = env.env
    return isinstance(env.action_space, gym.spaces.Discrete)


def cartpole_v1_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """CartPole-v1 ends when the cart leaves +-2.4 or the pole passes 12 degrees."""
    return (next_obs[..., 0].abs() > X_THRESHOLD) | (next_obs[..., 2].abs() > THETA_THRESHOLD)


def acrobot_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Acrobot-v1 ends when the tip rises above the bar: -cos(t1) - cos(t1 + t2) > 1, with the
    observation (cos t1, sin t1, cos t2, sin t2, dt1, dt2)."""
    cos1, sin1, cos2, sin2 = next_obs[..., 0], next_obs[..., 1], next_obs[..., 2], next_obs[..., 3]
    cos12 = cos1 * cos2 - sin1 * sin2
    return -cos1 - cos12 > 1.0


def acrobot_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """-1 every step, 0 on the step that reaches the goal."""
    return acrobot_termination(next_obs).to(next_obs.dtype) - 1.0


MOUNTAIN_CAR_V0_GOAL_POSITION = 0.5


def mountain_car_v0_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """MountainCar-v0 ends at the flag (position >= 0.5) moving right or standing still."""
    return (next_obs[..., 0] >= MOUNTAIN_CAR_V0_GOAL_POSITION) & (next_obs[..., 1] >= 0.0)


def minus_one(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """-1 for every step, the terminating one included (MountainCar-v0)."""
    return -torch.ones(next_obs.shape[:-1], dtype=next_obs.dtype, device=next_obs.device)


CARTPOLE_V1 = TaskSpec(
    env_id="CartPole-v1",
    reward_fn=cartpole_reward,
    termination_fn=cartpole_v1_termination,
    solved_return=475.0,
)
ACROBOT = TaskSpec(
    env_id="Acrobot-v1",
    reward_fn=acrobot_reward,
    termination_fn=acrobot_termination,
    solved_return=-100.0,
)
MOUNTAIN_CAR_V0 = TaskSpec(
    env_id="MountainCar-v0",
    reward_fn=minus_one,
    termination_fn=mountain_car_v0_termination,
    solved_return=-110.0,
)
