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
    forget: bool = False
    """On an alarm, drop the transitions from before the estimated change (the first step of the
    window whose own error passed the threshold) and refit from fresh weights once `window` new
    transitions exist: the old data and weights describe dynamics that no longer hold, and a
    model fitted on old and new data together averages the two."""
    forget_cooldown: int = 1000
    """Steps after forgetting during which further alarms do not forget (the model of the new
    dynamics is still being learned, and its alarms then mean "new states", not "new
    dynamics")."""

    def validate(self) -> None:
        require(self.factor > 1.0, "monitor.factor", "must exceed 1")
        require(self.window >= 1, "monitor.window", "must be at least 1")
        if self.forget:
            require(
                self.window >= 2, "monitor.window", "must be at least 2 to forget (a fit needs 2)"
            )
        require(self.forget_cooldown >= 0, "monitor.forget_cooldown", "must be 0 or more")


class ModelErrorMonitor:
    def __init__(self, config: MonitorConfig):
        self.config = config
        self.baseline: float | None = None
        self._errors: deque[float] = deque(maxlen=config.window)

    def reset(self, baseline: float) -> None:
        """Start watching a freshly fitted model whose holdout error is `baseline`."""
        self.baseline = max(baseline, 1e-8)
        self._errors.clear()

    def steps_since_change(self) -> int:
        """How many of the window's steps are from after the change: counted from the first step
        whose own error passed the threshold (a simple change-point estimate)."""
        threshold = self.config.factor * (self.baseline or 0.0)
        errors = list(self._errors)
        first = next((i for i, e in enumerate(errors) if e > threshold), 0)
        return len(errors) - first

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
