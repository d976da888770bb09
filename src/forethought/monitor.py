"""Watching the model while acting: compare every real next state with the model's prediction
and call for a refit when the recent error is far above what the model showed on holdout data.

The error is measured exactly like the fit's holdout error (per-member squared error of the
normalised delta, averaged), so the two are comparable; the monitor fires when the mean over the
last `window` steps exceeds `factor` times the holdout error, then starts a fresh window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from forethought.errors import require
from forethought.models.dynamics import DynamicsModel


@dataclass(frozen=True)
class MonitorConfig:
    """Model-error monitoring and triggered retraining."""

    enabled: bool = False
    """Watch the one-step prediction error while acting and refit when it drifts."""
    factor: float = 20.0
    """Fire when the windowed error exceeds this many times the model's holdout error. On-policy
    states are new to the model, so its error on them sits above the holdout error even without
    drift (up to ~15x seen on Pendulum-v1 right after an episode starts); halving the pendulum's
    mass gave 200-300x."""
    window: int = 20
    """Number of recent steps averaged before comparing."""
    refit_mid_episode: bool = True
    """Refit as soon as the monitor fires (else only at the end of the episode)."""

    def validate(self) -> None:
        require(self.factor > 1.0, "monitor.factor", "must exceed 1")
        require(self.window >= 1, "monitor.window", "must be at least 1")


class ModelErrorMonitor:
    def __init__(self, config: MonitorConfig):
        self.config = config
        self.baseline: float | None = None
        self._errors: deque[float] = deque(maxlen=config.window)

    def reset(self, baseline: float) -> None:
        """Start watching a freshly fitted model whose holdout error is `baseline`."""
        self.baseline = max(baseline, 1e-8)
        self._errors.clear()

    @property
    def windowed_error(self) -> float:
        return float(np.mean(self._errors)) if self._errors else 0.0

    def observe(self, error: float) -> bool:
        """Record one step's error; True when the window's mean says the model has drifted."""
        self._errors.append(error)
        full = len(self._errors) == self.config.window
        return bool(
            full
            and self.baseline is not None
            and self.windowed_error > self.config.factor * self.baseline
        )


@torch.no_grad()
def prediction_error(model: DynamicsModel, obs, action, reward, next_obs) -> float:
    """The model's error on one real transition, in the units of its holdout error."""
    device = model.input_mean.device

    def as_t(x) -> torch.Tensor:  # one row: 1 x D
        return torch.as_tensor(np.asarray(x, np.float32), device=device)[None]

    obs_t, next_t = as_t(obs), as_t(next_obs)
    inputs = model.make_inputs(obs_t, as_t(action))
    targets = model.make_targets(
        obs_t, next_t, torch.as_tensor([float(reward)], device=obs_t.device)
    )
    mse, _ = model.holdout_scores(inputs, targets)
    return float(mse.mean())
