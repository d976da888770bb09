"""Per-environment knowledge. Any Gymnasium env with a flat Box observation space and a Box or
Discrete action space runs; the ones listed here also have known reward and termination
functions, so the model need not learn them."""

import gymnasium

from forethought.tasks.base import (
    ActionKind,
    TaskSpec,
    check_env,
    check_finite_obs,
    check_spaces,
    make_env,
    never_terminates,
)
from forethought.tasks.cartpole import CARTPOLE_ID, CONTINUOUS_CARTPOLE
from forethought.tasks.classic import MOUNTAIN_CAR, PENDULUM, mountain_car_reward, pendulum_reward
from forethought.tasks.discrete import (
    ACROBOT,
    CARTPOLE_V1,
    MOUNTAIN_CAR_V0,
    OneHotActions,
    is_discrete,
    one_hot,
    vector_actions,
)
from forethought.tasks.mujoco import HOPPER, INVERTED_PENDULUM, inverted_pendulum_reward

KNOWN_TASKS: dict[str, TaskSpec] = {
    t.env_id: t
    for t in (
        PENDULUM,
        MOUNTAIN_CAR,
        INVERTED_PENDULUM,
        CONTINUOUS_CARTPOLE,
        CARTPOLE_V1,
        ACROBOT,
        MOUNTAIN_CAR_V0,
        HOPPER,
    )
}

if CARTPOLE_ID not in gymnasium.registry:
    gymnasium.register(
        CARTPOLE_ID,
        entry_point="forethought.tasks.cartpole:ContinuousCartPoleEnv",
        max_episode_steps=200,
    )


def get_task(env_id: str) -> TaskSpec:
    """The known spec for `env_id`, or a bare one (learned reward and termination)."""
    return KNOWN_TASKS.get(env_id, TaskSpec(env_id=env_id))


__all__ = [
    "HOPPER",
    "INVERTED_PENDULUM",
    "KNOWN_TASKS",
    "MOUNTAIN_CAR",
    "PENDULUM",
    "ActionKind",
    "OneHotActions",
    "TaskSpec",
    "check_env",
    "check_finite_obs",
    "check_spaces",
    "get_task",
    "inverted_pendulum_reward",
    "is_discrete",
    "make_env",
    "mountain_car_reward",
    "never_terminates",
    "one_hot",
    "pendulum_reward",
    "vector_actions",
]
