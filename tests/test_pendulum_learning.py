"""Slow tier: the agent must actually learn. Pendulum-v1 from scratch, five episodes (1,000 env
steps, one of them random), evaluated on the fixed seeds 1000-1009."""

import pytest

from forethought.config import TrainConfig
from forethought.trainers import train

THRESHOLD = -200.0


@pytest.mark.slow
def test_pendulum_swings_up_within_five_episodes(tmp_path):
    finals = []
    for seed in range(3):
        result = train(
            TrainConfig(
                env="Pendulum-v1",
                planner="icem",
                episodes=5,
                seed=seed,
                out=tmp_path / f"seed{seed}",
                quiet=True,
            )
        )
        finals.append(result.history[-1]["eval_return"])
        assert result.history[-1]["env_steps"] == 1000
    print("final mean evaluation returns per seed:", finals)
    assert sum(f >= THRESHOLD for f in finals) >= 2, finals
