"""Default tier: on a tiny task with no known reward function, the agent must actually learn
(dynamics, reward head and planning together), within seconds."""

import gymnasium as gym
import numpy as np

from forethought.models import FitConfig, ModelConfig
from forethought.planners import PlannerConfig
from forethought.trainers import train
from helpers import tiny_config


class PointMass(gym.Env):
    """x' = x + 0.2 a with a in [-1, 1]; reward -(x' - 1)^2; start near 0; 20 steps."""

    observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-0.2, 0.2, 1).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.x = (self.x + 0.2 * np.clip(action, -1, 1)).astype(np.float32)
        return self.x.copy(), float(-((self.x[0] - 1.0) ** 2)), False, False, {}


def test_learns_to_reach_the_goal_with_learned_reward(tmp_path):
    gym.register("ForethoughtTest/PointMass-v0", entry_point=PointMass, max_episode_steps=20)
    config = tiny_config(
        tmp_path / "run",
        env="ForethoughtTest/PointMass-v0",
        episodes=4,
        eval_episodes=3,
        fit=FitConfig(max_epochs=60, batch_size=16),
        model=ModelConfig(ensemble_size=2, hidden_size=32, num_hidden_layers=2),
        planning=PlannerConfig(horizon=8, population=50, elites=5, iterations=3),
    )
    history = train(config).history
    random_return = history[0]["return"]
    final = history[-1]["eval_return"]
    # Straight to the goal scores about -1.4; doing nothing about -20; random play around -20.
    assert random_return < -10
    assert final > -4, [r["eval_return"] for r in history]
