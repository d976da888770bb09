"""What ends a training run: --steps, --episodes, or whichever of the two comes first."""

from forethought.config import DEFAULT_EPISODES, TrainConfig
from forethought.reporting.progress import episode_line
from forethought.trainers import train
from helpers import tiny_config


def test_the_episode_limit_follows_what_was_asked():
    assert TrainConfig().episode_limit == DEFAULT_EPISODES
    assert TrainConfig(steps=3000).episode_limit is None  # the step budget alone decides
    assert TrainConfig(steps=3000, episodes=4).episode_limit == 4  # whichever comes first
    assert TrainConfig(episodes=4).episode_limit == 4


def test_a_step_budget_alone_runs_past_the_default_episode_count(tmp_path):
    """60 steps of 5-step episodes are 12 episodes, more than the default 10."""
    config = tiny_config(tmp_path / "run", episodes=None, steps=60, max_episode_steps=5,
                         eval_every=100)  # fmt: skip
    rows = [r for r in train(config).history if "event" not in r]
    assert len(rows) == 12 > DEFAULT_EPISODES
    assert rows[-1]["env_steps"] == 60
    assert rows[-1]["eval_return"] is not None  # the last episode is evaluated
    assert episode_line(rows[-1], config.episode_limit).startswith("episode 12  steps 60")
    assert episode_line(rows[-1], 20).startswith("episode 12/20  steps 60")
