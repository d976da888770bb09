"""A continuous-action cart-pole: the task of mbrl-lib's PETS example, so forethought and
mbrl-lib can be compared at matched return.

Gymnasium's CartPole-v1 physics (Euler integration, 0.02 s steps, the same thresholds), with a
Box(-1, 1) action that scales the 10 N force instead of a left/right choice. Reward 1 for every
step, episodes of 200 steps, terminated when the cart leaves +-2.4 or the pole passes 12 degrees.
Registered as `forethought/ContinuousCartPole-v0`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from forethought.tasks.base import TaskSpec

CARTPOLE_ID = "forethought/ContinuousCartPole-v0"
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


class ContinuousCartPoleEnv(CartPoleEnv):
    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def step(self, action):
        force = self.force_mag * float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        x, x_dot, theta, theta_dot = self.state
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        obs = self.state.astype(np.float32)  # decided on what the agent sees
        terminated = bool(abs(obs[0]) > X_THRESHOLD or abs(obs[2]) > THETA_THRESHOLD)
        return obs, 1.0, terminated, False, {}


def cartpole_termination(next_obs: torch.Tensor) -> torch.Tensor:
    return (next_obs[..., 0].abs() > X_THRESHOLD) | (next_obs[..., 2].abs() > THETA_THRESHOLD)


def cartpole_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """1 for every step, the terminating one included (as the environment pays it)."""
    return torch.ones(next_obs.shape[:-1], dtype=next_obs.dtype, device=next_obs.device)


CONTINUOUS_CARTPOLE = TaskSpec(
    env_id=CARTPOLE_ID,
    reward_fn=cartpole_reward,
    termination_fn=cartpole_termination,
    solved_return=195.0,
)
