"""Watching the model while acting: compare every real next state with the model's prediction
and call for a refit when the model has recently been far more surprised than on holdout data.

The statistic is the surprise (`DynamicsModel.surprise`): the squared error of the ensemble's
prediction divided by the variance the ensemble itself predicts. The plain squared error cannot
tell changed dynamics from states that are simply harder to predict: on Pendulum-v1 a swing-up
right after an episode starts had 34x the holdout error with no change at all, more than the
first window after the actuator was reversed. Its surprise was 0.4-2.3 per step (about 1 means
calibrated), against 200-8,000 per step after the reversal. The monitor fires when the mean over
the last `window` steps exceeds `factor` times the holdout surprise of the latest fit, then starts
a fresh window.
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
    """Watch the one-step prediction surprise while acting and refit when the model has drifted."""
    factor: float = 50.0
    """Fire when the windowed surprise exceeds this many times the model's holdout surprise.
    Without a change, Pendulum-v1 windows reached up to ~14x (new on-policy states); a reversed
    actuator gave thousands of times, enough to fire within 1-2 steps."""
    window: int = 20
    """Number of recent steps averaged before comparing."""
    refit_mid_episode: bool = True
    """Refit as soon as the monitor fires (else only at the end of the episode)."""
    forget: bool = False
    """On an alarm, drop the transitions from before the estimated change (the first step of the
    window whose own surprise passed the threshold) and refit from fresh weights once `window` new
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
        """Start watching a freshly fitted model whose holdout surprise is `baseline`."""
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
    def windowed_mean(self) -> float:
        return float(np.mean(self._errors)) if self._errors else 0.0

    def observe(self, error: float) -> bool:
        """Record one step's error; True when the window's mean says the model has drifted."""
        self._errors.append(error)
        full = len(self._errors) == self.config.window
        return bool(
            full
            and self.baseline is not None
            and self.windowed_mean > self.config.factor * self.baseline
        )


@torch.no_grad()
def prediction_surprise(model: DynamicsModel, obs, action, reward, next_obs) -> float:
    """The model's surprise at one real transition (`DynamicsModel.surprise`), in the units of
    the holdout surprise a fit reports."""
    device = model.input_mean.device

    def as_t(x) -> torch.Tensor:  # one row: 1 x D
        return torch.as_tensor(np.asarray(x, np.float32), device=device)[None]

    obs_t, next_t = as_t(obs), as_t(next_obs)
    inputs = model.make_inputs(obs_t, as_t(action))
    targets = model.make_targets(
        obs_t, next_t, torch.as_tensor([float(reward)], device=obs_t.device)
    )
    return float(model.surprise(inputs, targets)[0])
