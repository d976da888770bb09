"""The run directory: resolved config, per-episode metrics, transition log, checkpoint, plots.

    RUN_DIR/
      config.json          the TrainConfig the run was started with
      metrics.jsonl        one JSON object per finished episode (plus interruption notes)
      transitions.bin      append-only log of every environment transition (crash-safe)
      checkpoint.pt        model, optimiser, buffer, RNG states, progress (episode boundary)
      learning_curve.png   evaluation and training return against environment steps

Every file is replaced atomically (temp file + rename), so a kill at any moment leaves the
previous complete version behind.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought.buffer import TransitionLog, atomic_write_bytes
from forethought.config import TrainConfig
from forethought.errors import ConfigError


@dataclass
class Progress:
    """Counters that say where a run is; saved in every checkpoint."""

    episode: int = 0  # episodes finished
    env_steps: int = 0  # environment transitions completed (== transitions in the log)
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics rows so far
    fit_from: int = 0  # first transition the model is fitted on (moved on when it forgets)
    forgot_at: int | None = None  # step of the last alarm that forgot old data
    refit_at_step: int | None = None  # after forgetting: refit once this many transitions exist


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    log_path = property(lambda self: self.path / "transitions.bin")
    plot_path = property(lambda self: self.path / "learning_curve.png")

    @classmethod
    def create(cls, config: TrainConfig) -> RunDir:
        run = cls(config.run_dir())
        if run.config_path.exists():
            raise ConfigError(
                "out",
                f"{run.path} already holds a run; pass --resume {run.path} to continue it, "
                "or choose another --out",
            )
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run.config_path, json.dumps(config.to_dict(), indent=2).encode())
        return run

    @classmethod
    def open(cls, path: Path) -> tuple[RunDir, TrainConfig]:
        run = cls(path)
        if not run.config_path.exists():
            raise ConfigError("resume", f"{path} is not a run directory (no config.json in it)")
        config = TrainConfig.from_dict(json.loads(run.config_path.read_text()))
        return run, config

    def transition_log(self, obs_dim: int, action_dim: int) -> TransitionLog:
        return TransitionLog(self.log_path, obs_dim, action_dim)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        out = io.BytesIO()
        torch.save(state, out)
        atomic_write_bytes(self.checkpoint_path, out.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        return torch.load(self.checkpoint_path, weights_only=False, map_location="cpu")


def rng_states(rng: np.random.Generator, generators: dict[str, torch.Generator]) -> dict[str, Any]:
    return {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        **{name: g.get_state() for name, g in generators.items()},
    }


def restore_rng_states(
    states: dict[str, Any], rng: np.random.Generator, generators: dict[str, torch.Generator]
) -> None:
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])
    for name, g in generators.items():
        g.set_state(states[name])
