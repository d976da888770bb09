"""Known reward and termination functions must equal the environments' own, on real transitions."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.tasks import KNOWN_TASKS, get_task, one_hot


def collect(env_id, steps, seed, setup=None, policy=None):
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    rows = []
    obs, _ = env.reset(seed=seed)
    if setup:
        obs = setup(env)
    for _ in range(steps):
        # Actions beyond the bounds on purpose: the functions must clip exactly as the env does.
        if isinstance(env.action_space, gym.spaces.Discrete):  # the model sees one-hot vectors
            index = int(rng.integers(env.action_space.n))
            action, logged = index, one_hot(np.array(index), int(env.action_space.n))
        else:
            low, high = env.action_space.low, env.action_space.high
            action = policy(obs) if policy else rng.uniform(1.5 * low, 1.5 * high)
            action = logged = np.asarray(action, dtype=np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, logged, reward, next_obs, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            if setup:
                obs = setup(env)
    as_t = lambda i: torch.as_tensor(np.array([r[i] for r in rows]), dtype=torch.float64)  # noqa: E731
    return as_t(0), as_t(1), as_t(2), as_t(3), torch.as_tensor([r[4] for r in rows])


def near_goal(env):
    """Start MountainCar just left of the flag so episodes reach it."""
    env.unwrapped.state = np.array([0.44, 0.01])
    return np.array(env.unwrapped.state, dtype=np.float32)


def acrobot_near_the_bar(env):
    """Start Acrobot swinging near the height that ends it, so episodes reach it."""
    rng = env.unwrapped.np_random
    env.unwrapped.state = np.array([rng.uniform(1.7, 2.3), rng.uniform(-0.3, 0.3), 0.0, 0.0])
    return env.unwrapped._get_ob()


def mountain_car_near_the_flag(env):
    env.unwrapped.state = np.array([0.47, 0.02])
    return np.array(env.unwrapped.state, dtype=np.float32)


CASES = {
    "CartPole-v1": dict(steps=600),
    "Acrobot-v1": dict(steps=600, setup=acrobot_near_the_bar),
    "MountainCar-v0": dict(steps=300, setup=mountain_car_near_the_flag),
    "Pendulum-v1": dict(steps=600),
    "MountainCarContinuous-v0": dict(steps=400, setup=near_goal),
    "InvertedPendulum-v5": dict(steps=600),
    "forethought/ContinuousCartPole-v0": dict(steps=600),
    "Hopper-v5": dict(steps=600),  # termination known, reward learned
}


@pytest.mark.parametrize("env_id", sorted(KNOWN_TASKS))
def test_known_reward_and_termination_match_the_environment(env_id):
    task = get_task(env_id)
    obs, action, reward, next_obs, terminated = collect(env_id, seed=0, **CASES[env_id])
    if task.reward_fn is not None:
        predicted = task.reward_fn(obs, action, next_obs)
        assert predicted.shape == reward.shape
        torch.testing.assert_close(predicted, reward, rtol=0, atol=1e-5)
    assert torch.equal(task.termination_fn(next_obs), terminated)
    if env_id != "Pendulum-v1":
        assert terminated.any() and (~terminated).any(), "both outcomes must be exercised"


def test_reward_functions_accept_any_leading_shape():
    task = get_task("Pendulum-v1")
    out = task.reward_fn(torch.zeros(5, 2, 7, 3), torch.zeros(5, 2, 7, 1), torch.zeros(5, 2, 7, 3))
    assert out.shape == (5, 2, 7)


def test_unknown_env_gets_learned_heads():
    assert get_task("Reacher-v5").reward_fn is None


def test_hopper_termination_sees_each_unhealthy_condition():
    end = get_task("Hopper-v5").termination_fn
    healthy = torch.zeros(11, dtype=torch.float64)
    healthy[0] = 1.25  # the torso's height at reset
    cases = {"low": (0, 0.69), "tilted": (1, -0.21), "joint": (3, 100.5), "nan": (7, float("nan"))}
    states = torch.stack(
        [healthy]
        + [healthy.clone().index_fill_(0, torch.tensor([i]), v) for i, v in cases.values()]
    )
    assert end(states).tolist() == [False, True, True, True, True]
