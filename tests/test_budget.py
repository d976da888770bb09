"""What ends a training run: --steps, --episodes, or whichever of the two comes first."""

import pytest

from forethought.config import DEFAULT_EPISODES, TrainConfig
from forethought.errors import ConfigError
from forethought.reporting.progress import episode_line
from forethought.trainers import resume, train
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


def test_stop_at_return_ends_a_planning_run_at_the_first_evaluation_that_reaches_it(tmp_path):
    """Pendulum returns are negative: a threshold of -1e9 is reached by the first evaluation,
    one of +1e9 never; a stopped run stays stopped when resumed with a larger budget."""
    stopped = tiny_config(tmp_path / "stop", episodes=4, stop_at_return=-1e9)
    assert [r["episode"] for r in train(stopped).history] == [0]
    resumed = resume(stopped.out, given=TrainConfig(episodes=8))
    assert [r["episode"] for r in resumed.history] == [0]
    never = tiny_config(tmp_path / "never", episodes=2, stop_at_return=1e9)
    assert [r["episode"] for r in train(never).history] == [0, 1]


def test_stop_at_return_stops_a_model_free_run_after_that_evaluation(tmp_path):
    config = TrainConfig(env="CartPole-v1", algo="ppo", steps=2000, eval_every_steps=200,
                         eval_episodes=2, out=tmp_path / "ppo", quiet=True, threads=1,
                         stop_at_return=1.0)  # fmt: skip
    rows = train(config).history
    assert [r["env_steps"] for r in rows] == [200]  # CartPole returns are at least 8


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_stop_at_return_must_be_finite(bad):
    with pytest.raises(ConfigError, match="--stop-at-return: must be a finite number"):
        TrainConfig(stop_at_return=bad).validate()
