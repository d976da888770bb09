"""Known reward and termination functions for Gymnasium's MuJoCo tasks."""

from __future__ import annotations

import torch

from forethought.tasks.base import TaskSpec

INVERTED_PENDULUM_MAX_ANGLE = 0.2  # radians; InvertedPendulum-v5 terminates beyond this


def inverted_pendulum_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """InvertedPendulum-v5 observation is (cart x, pole angle, cart v, pole angular v)."""
    not_finite = ~torch.isfinite(next_obs).all(dim=-1)
    return not_finite | (next_obs[..., 1].abs() > INVERTED_PENDULUM_MAX_ANGLE)


def inverted_pendulum_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """+1 for every step that does not end the episode (v5 gives 0 on the terminating step)."""
    return (~inverted_pendulum_termination(next_obs)).to(action.dtype)


INVERTED_PENDULUM = TaskSpec(
    env_id="InvertedPendulum-v5",
    reward_fn=inverted_pendulum_reward,
    termination_fn=inverted_pendulum_termination,
    solved_return=1000.0,
)
