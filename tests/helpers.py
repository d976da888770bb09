"""Small configurations that make a full run take seconds, and a run in a subprocess to kill."""

import os
import signal
import subprocess
import sys
import time
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


def start_cli(args: list[str]) -> subprocess.Popen:
    """`forethought train ARGS` in a subprocess (stderr kept for the failure message)."""
    return subprocess.Popen(
        [sys.executable, "-m", "forethought.cli", "train", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_when(proc: subprocess.Popen, condition, what: str) -> None:
    """SIGKILL `proc` as soon as `condition()` holds; fail if the run ends first."""
    deadline = time.time() + 120
    while not condition() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
