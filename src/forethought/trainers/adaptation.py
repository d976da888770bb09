"""When the model is refitted, and on which data: the fixed refit schedule, the model-error
monitor's alarms, and forgetting after the dynamics changed. The PETS loop asks `Adaptation`
what to do after each real step and at each episode's end; it never fits anything itself, and
all of its state is saved in the run's checkpoint.

The monitor compares every real next state with the model's prediction. Its statistic is the
surprise (`DynamicsModel.surprise`): the squared error of the ensemble's prediction divided by
the variance the ensemble itself predicts. The plain squared error cannot tell changed dynamics
from states that are simply harder to predict: on Pendulum-v1 a swing-up right after an episode
starts had 34x the holdout error with no change at all, more than the first window after the
actuator was reversed. Its surprise was 0.4-2.3 per step (about 1 means calibrated), against
200-8,000 per step after the reversal. The monitor fires when the mean over the last `window`
steps exceeds `factor` times the holdout surprise of the latest fit, then starts a fresh window.

With forgetting, an alarm drops the transitions from before the estimated change and, once
`window` new ones exist, asks for a refit from fresh weights: old data and old weights both
describe dynamics that no longer hold.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from forethought.config import MonitorConfig, TrainConfig
from forethought.models.dynamics import DynamicsModel

SMALL_FIT = 200  # transitions: fewer after forgetting keep the previous fit's normalisation


class ModelErrorMonitor:
    """The windowed surprise of recent real steps against the latest fit's holdout surprise."""

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

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "errors": list(self._errors)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state["baseline"]
        self._errors = deque(state["errors"], maxlen=self.config.window)

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


@dataclass
class Alarm:
    """The monitor fired: the event to record, and whether the loop should refit right now."""

    event: dict[str, Any]
    refit_now: bool


class Adaptation:
    """The refit policy of a PETS run and its state (saved in every checkpoint)."""

    def __init__(self, config: TrainConfig):
        self.config = config.monitor
        self.warmup_episodes, self.refit_every = config.warmup_episodes, config.refit_every
        self.monitor = ModelErrorMonitor(config.monitor)
        self.fit_from = 0  # first transition the model is fitted on (moved on when it forgets)
        self.forgot_at: int | None = None  # step of the last alarm that forgot old data
        self.refit_at_step: int | None = None  # after forgetting: refit once this many exist
        self.refit_due = False  # an alarm asked for a refit at the episode's end
        self.refit_from_scratch = False  # ... from fresh weights (it also forgot)
        self.alarms_this_episode = 0

    # -- what the loop asks ------------------------------------------------------------------
    def fit_due(self, episode: int) -> tuple[bool, bool]:
        """(refit now?, from fresh weights?) at the end of `episode`: after the warm-up, on the
        fixed schedule, or for an alarm told to wait; never while a post-forgetting refit waits
        for new data."""
        due = (
            episode + 1 == self.warmup_episodes
            or (episode + 1) % self.refit_every == 0
            or self.refit_due
        )
        return due and self.refit_at_step is None, self.refit_from_scratch

    def watch(
        self, model: DynamicsModel, transition: tuple, step: int, episode: int
    ) -> Alarm | None:
        """Feed the real transition that made `step` transitions in all to the monitor."""
        if self.refit_at_step is not None:  # waiting for new data after forgetting
            return None
        if not self.monitor.observe(prediction_surprise(model, *transition)):
            return None
        self.alarms_this_episode += 1
        event = {
            "event": "model_drift",
            "episode": episode,
            "step": step,
            "windowed_surprise": self.monitor.windowed_mean,
            "holdout_surprise": self.monitor.baseline,
        }
        if self.config.forget and not self.forgot_recently(step):
            # Only the transitions since the estimated change describe the dynamics now.
            self.fit_from = max(self.fit_from, step - self.monitor.steps_since_change())
            self.forgot_at = step
            if self.config.refit_mid_episode:
                self.refit_at_step = self.fit_from + self.config.window
            else:
                self.refit_due = self.refit_from_scratch = True
                self.monitor.reset(self.monitor.baseline)  # one alarm per window until the refit
            event.update(forgot_before=self.fit_from, refit_at_step=self.refit_at_step, refit=False)
            return Alarm(event, refit_now=False)
        if self.config.refit_mid_episode:
            return Alarm(event, refit_now=True)
        self.refit_due = True
        self.monitor.reset(self.monitor.baseline)  # one alarm per window until the refit
        event.update(refit=False)
        return Alarm(event, refit_now=False)

    def forgetting_refit_due(self, step: int) -> bool:
        """True once the refit an alarm with forgetting scheduled has its window of new data."""
        if self.refit_at_step is None or step < self.refit_at_step:
            return False
        self.refit_at_step = None
        return True

    def keep_normalization(self, n_transitions: int, step: int) -> bool:
        """A fit on the few transitions since forgetting keeps the previous normalisation."""
        return n_transitions < SMALL_FIT and self.forgot_recently(step)

    # -- what the loop tells it --------------------------------------------------------------
    def start_episode(self) -> None:
        self.alarms_this_episode = 0

    def fitted(self, holdout_surprise: float, step: int) -> None:
        """A fit finished: watch the new model against its own holdout surprise."""
        baseline = holdout_surprise
        if self.forgot_recently(step) and self.monitor.baseline is not None:
            # A fit on the few transitions since forgetting has a noisy holdout score: it may not
            # set a lower bar than the one a model fitted on plenty of data had.
            baseline = max(baseline, self.monitor.baseline)
        self.monitor.reset(baseline)
        self.refit_due = self.refit_from_scratch = False

    def forgot_recently(self, step: int) -> bool:
        return self.forgot_at is not None and step - self.forgot_at < self.config.forget_cooldown

    # -- checkpointing -----------------------------------------------------------------------
    _FIELDS = (
        "fit_from",
        "forgot_at",
        "refit_at_step",
        "refit_due",
        "refit_from_scratch",
        "alarms_this_episode",
    )

    def state_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self._FIELDS}, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._FIELDS:
            setattr(self, k, state[k])
        self.monitor.load_state_dict(state["monitor"])
