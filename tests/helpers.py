"""Small configurations that make a full run take seconds."""

from pathlib import Path

from forethought.config import TrainConfig
from forethought.models import FitConfig, ModelConfig
from forethought.planners import PlannerConfig
from forethought.rollout import RolloutConfig

TINY_ARGS = [
    "--env", "Pendulum-v1",
    "--max-episode-steps", "30",
    "--eval-episodes", "2",
    "--model.ensemble-size", "2",
    "--model.hidden-size", "16",
    "--model.num-hidden-layers", "1",
    "--fit.max-epochs", "5",
    "--planning.horizon", "5",
    "--planning.population", "20",
    "--planning.elites", "4",
    "--planning.iterations", "2",
    "--rollout.particles", "2",
    "--quiet",
]  # fmt: skip


def tiny_config(out: Path, **changes) -> TrainConfig:
    base = dict(
        env="Pendulum-v1",
        episodes=3,
        max_episode_steps=30,
        eval_episodes=2,
        out=out,
        quiet=True,
        model=ModelConfig(ensemble_size=2, hidden_size=16, num_hidden_layers=1),
        fit=FitConfig(max_epochs=5),
        planning=PlannerConfig(horizon=5, population=20, elites=4, iterations=2),
        rollout=RolloutConfig(particles=2),
    )
    return TrainConfig(**{**base, **changes})
