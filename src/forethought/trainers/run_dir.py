"""The run directory of a control run (every `--algo`), on top of `storage.RunDirectory`:

RUN_DIR/
  config.json          the TrainConfig the run was started with (plus --resume overrides)
  metrics.jsonl        one JSON object per finished episode or evaluation, plus events
  transitions.bin      append-only log of every environment transition (model-based runs)
  transitions.json     the log's record layout
  checkpoint.pt        model, optimiser, buffer, RNG states, progress
  learning_curve.png   evaluation and training return against environment steps
  .lock                held by the process writing the directory
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forethought.config import TrainConfig
from forethought.data import TransitionLog
from forethought.storage import RunDirectory, load_torch, save_torch


@dataclass
class Progress:
    """Counters that say where a model-based run is; saved in every checkpoint."""

    episode: int = 0  # episodes finished
    env_steps: int = 0  # environment transitions the run counts (== the buffer's total)
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics rows so far
    log_records: int = 0  # records in the transition log when this checkpoint was taken
    abandoned: list[tuple[int, int]] = field(default_factory=list)  # log ranges not counted

    def state_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "env_steps": self.env_steps,
            "history": self.history,
            "log_records": self.log_records,
            "abandoned": [list(r) for r in self.abandoned],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Progress:
        return cls(
            episode=state["episode"],
            env_steps=state["env_steps"],
            history=list(state["history"]),
            log_records=state["log_records"],
            abandoned=[tuple(r) for r in state["abandoned"]],
        )


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    plot_path: Path


class RunDir(RunDirectory):
    run_files = ("transitions.bin", "transitions.json", "checkpoint.pt", "snapshots")

    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    log_path = property(lambda self: self.path / "transitions.bin")
    plot_path = property(lambda self: self.path / "learning_curve.png")

    @classmethod
    def create(cls, config: TrainConfig) -> RunDir:
        """A new, locked run directory holding `config`."""
        run = cls(config.run_dir())
        run.create_directory(config.to_dict())
        return run

    @classmethod
    def open(
        cls, path: Path, flag: str = "resume", lock: bool = True
    ) -> tuple[RunDir, TrainConfig]:
        """An existing run directory (locked unless `lock` is False) and its saved config."""
        run = cls(path)
        saved = run.open_directory(flag, lock=lock)
        return run, TrainConfig.from_dict(saved, source=str(run.config_path))

    def transition_log(self, obs_dim: int, action_dim: int) -> TransitionLog:
        return TransitionLog(self.log_path, obs_dim, action_dim)

    def counted_records(self, obs_dim: int, action_dim: int) -> np.ndarray | None:
        """The log's raw records the run counts (abandoned attempts left out), as of the last
        checkpoint; None before the first checkpoint."""
        checkpoint = self.load_checkpoint()
        if checkpoint is None:
            return None
        progress = Progress.from_state_dict(checkpoint["progress"])
        log = self.transition_log(obs_dim, action_dim)
        raw = log.records(0, progress.log_records)
        log.close()
        keep = np.ones(len(raw), bool)
        for begin, end in progress.abandoned:
            keep[begin:end] = False
        return raw[keep]

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch(self.checkpoint_path, state)

    def snapshot_path(self, episode: int) -> Path:
        return self.path / "snapshots" / f"episode_{episode}.pt"

    def save_snapshot(self, episode: int, state: dict[str, Any]) -> None:
        self.snapshot_path(episode).parent.mkdir(exist_ok=True)
        save_torch(self.snapshot_path(episode), state)

    @property
    def policies_dir(self) -> Path:
        """Where `--keep-policies` saves the policy at every evaluation."""
        return self.path / "policies"

    def save_policy(self, env_steps: int, state: dict[str, Any]) -> None:
        self.policies_dir.mkdir(exist_ok=True)
        save_torch(self.policies_dir / f"step-{env_steps:09d}.pt", state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        return load_torch(self.checkpoint_path)
