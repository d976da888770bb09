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


HOPPER_MIN_HEIGHT = 0.7  # Hopper-v5's healthy torso height (exclusive)
HOPPER_MAX_ANGLE = 0.2  # radians; its healthy torso angle range is (-0.2, 0.2)
HOPPER_STATE_LIMIT = 100.0  # every joint position and velocity must stay within (-100, 100)


def hopper_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Hopper-v5's "unhealthy" test on its observation (torso height, torso angle, 3 joint
    angles, 6 velocities clipped to +-10). The env checks the velocities before clipping, so a
    velocity past 100 (never seen in practice) is the one case this cannot see."""
    height, angle, rest = next_obs[..., 0], next_obs[..., 1], next_obs[..., 1:]
    healthy = (
        (rest.abs() < HOPPER_STATE_LIMIT).all(dim=-1)
        & (height > HOPPER_MIN_HEIGHT)
        & (angle.abs() < HOPPER_MAX_ANGLE)
    )
    return ~healthy  # NaN compares False, so a non-finite state ends the episode too


# The reward stays learned: it pays the torso's x displacement per step, and the observation
# has no x position (its x velocity is the end-of-step value, not the displacement).
HOPPER = TaskSpec(env_id="Hopper-v5", termination_fn=hopper_termination)
