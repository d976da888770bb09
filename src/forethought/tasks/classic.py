"""Known reward and termination functions for Gymnasium's classic-control tasks."""

from __future__ import annotations

import torch

from forethought.tasks.base import TaskSpec, never_terminates

PENDULUM_MAX_TORQUE = 2.0  # Pendulum-v1 clips the torque to [-2, 2] before computing the cost


def pendulum_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Pendulum-v1: -(theta^2 + 0.1 thdot^2 + 0.001 u^2), on the state *before* the step.

    The observation is (cos theta, sin theta, thdot); atan2 recovers theta already wrapped to
    [-pi, pi], which is what the environment's angle_normalize produces.
    """
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    theta_dot = obs[..., 2]
    torque = action[..., 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(theta**2 + 0.1 * theta_dot**2 + 0.001 * torque**2)


MOUNTAIN_CAR_GOAL_POSITION = 0.45
MOUNTAIN_CAR_GOAL_VELOCITY = 0.0
MOUNTAIN_CAR_GOAL_BONUS = 100.0


def mountain_car_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """MountainCarContinuous-v0 ends when the car reaches the flag moving right (or still)."""
    return (next_obs[..., 0] >= MOUNTAIN_CAR_GOAL_POSITION) & (
        next_obs[..., 1] >= MOUNTAIN_CAR_GOAL_VELOCITY
    )


def mountain_car_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """+100 on reaching the goal, minus 0.1 * (unclipped) action^2 every step."""
    bonus = MOUNTAIN_CAR_GOAL_BONUS * mountain_car_termination(next_obs).to(action.dtype)
    return bonus - 0.1 * action[..., 0] ** 2


PENDULUM = TaskSpec(
    env_id="Pendulum-v1",
    reward_fn=pendulum_reward,
    termination_fn=never_terminates,
    solved_return=-200.0,
)
MOUNTAIN_CAR = TaskSpec(
    env_id="MountainCarContinuous-v0",
    reward_fn=mountain_car_reward,
    termination_fn=mountain_car_termination,
    solved_return=90.0,
)
