"""MBPO: the model buffer holds only imagined branches from real start states, batches honour
the real-data ratio, and a tiny run goes end to end through the shared harness."""

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.config import MBPOConfig, TrainConfig
from forethought.errors import ConfigError
from forethought.models import FitConfig, ModelConfig
from forethought.trainers import resume, train
from forethought.trainers.mbpo import MixedReplayBuffer

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def filled_buffer(real_ratio: float) -> MixedReplayBuffer:
    buffer = MixedReplayBuffer(500, OBS, ACT, "cpu", real_ratio=real_ratio, model_capacity=300)
    rng = np.random.default_rng(0)
    for _ in range(200):  # real observations live in [0, 1)
        obs = rng.random((1, 3)).astype(np.float32)
        buffer.add(obs, obs, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    imagined = 10 + rng.random((300, 3)).astype(np.float32)  # imagined ones in [10, 11)
    buffer.add_imagined(imagined, np.zeros((300, 1)), np.zeros(300), imagined, np.zeros(300, bool))
    return buffer


@pytest.mark.parametrize("real_ratio, batch", [(0.05, 256), (0.25, 100), (0.0, 64), (1.0, 32)])
def test_sampled_batches_honour_the_real_data_ratio(real_ratio, batch):
    buffer = filled_buffer(real_ratio)
    for _ in range(5):
        sample = buffer.sample(batch)
        real_rows = int((sample.observations[:, 0] < 5).sum())
        assert real_rows == round(real_ratio * batch)
        assert len(sample.observations) == batch


def test_all_real_until_imagined_data_exists():
    buffer = MixedReplayBuffer(100, OBS, ACT, "cpu", real_ratio=0.05, model_capacity=10)
    buffer.add(np.ones((1, 3)), np.ones((1, 3)), np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    assert len(buffer.sample(8).observations) == 8 and buffer.last_sample_counts == (8, 0)


def tiny_mbpo(out, **mbpo):
    settings = dict(
        warmup_steps=100,
        model_train_freq=100,
        rollout_batch=40,
        rollout_min_length=3,
        rollout_max_length=3,
        gradient_steps=1,
    )
    return TrainConfig(
        env="Pendulum-v1",
        algo="mbpo",
        steps=200,
        eval_every_steps=100,
        eval_episodes=2,
        max_episode_steps=50,
        out=out,
        quiet=True,
        model=ModelConfig(ensemble_size=2, hidden_size=16, num_hidden_layers=1),
        fit=FitConfig(max_epochs=3),
        mbpo=MBPOConfig(**{**settings, **mbpo}),
    )


def test_model_buffer_holds_only_branches_from_real_start_states(tmp_path):
    from forethought.trainers import sb3 as model_free

    config = tiny_mbpo(tmp_path / "mbpo")
    result = train(config)
    checkpoint = torch.load(result.run_dir / "checkpoint.pt", weights_only=False)
    assert [r["imagined_in_buffer"] for r in result.history if "event" not in r][-1] == 2 * 120
    assert len(checkpoint["refreshes"]) == 2  # refreshes at 100 and 200 steps

    # Rebuild the finished run to look inside its buffers.
    run = model_free._build(config, model_free.RunDir(result.run_dir), checkpoint)
    buffer: MixedReplayBuffer = run.model.replay_buffer
    real = buffer.real_transitions()
    model_buffer = buffer.model
    n = model_buffer.size()
    obs = model_buffer.observations[:n, 0]
    next_obs = model_buffer.next_observations[:n, 0]
    real_obs = {tuple(row) for row in real.obs}
    # Each refresh writes three chunks of 40 rows (Pendulum never terminates): step 1 starts at
    # real states, steps 2 and 3 continue from the previous imagined next state.
    for refresh in range(2):
        chunks = [slice(refresh * 120 + 40 * j, refresh * 120 + 40 * (j + 1)) for j in range(3)]
        assert all(tuple(row) in real_obs for row in obs[chunks[0]])
        for before, after in itertools.pairwise(chunks):
            np.testing.assert_array_equal(obs[after], next_obs[before])
            assert not any(tuple(row) in real_obs for row in obs[after])
    # Imagined transitions never leak into the real buffer. (The last checkpoint is taken after
    # SB3 stored the last step's transition, so it holds all 200 real ones.)
    assert buffer.size() == 200


def test_mbpo_run_resumes_and_bad_settings_are_refused(tmp_path):
    config = tiny_mbpo(tmp_path / "run", rollout_min_length=1, rollout_max_length=1)
    train(config)
    again = resume(tmp_path / "run")  # already finished: nothing more to do
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["env_steps"] for r in rows if "event" not in r] == [100, 200]
    assert again.history[-1]["model_refreshes"] == 2
    with pytest.raises(ConfigError, match="real-ratio"):
        tiny_mbpo(tmp_path / "bad", real_ratio=1.5).validate()
    with pytest.raises(ConfigError, match="rollout-max-length"):
        tiny_mbpo(tmp_path / "bad", rollout_min_length=5, rollout_max_length=2).validate()


def test_rollout_length_follows_the_linear_schedule():
    config = MBPOConfig(
        rollout_min_length=1, rollout_max_length=15, rollout_ramp_start=1000, rollout_ramp_end=3000
    )
    lengths = [config.rollout_length(s) for s in (0, 1000, 2000, 3000, 10_000)]
    assert lengths == [1, 1, 8, 15, 15]
