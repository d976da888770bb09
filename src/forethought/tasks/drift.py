"""A Gymnasium wrapper whose dynamics change at a given step, to test that a model-based agent
notices the change and adapts (distribution shift on purpose)."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from forethought.errors import ConfigError, require

ACTION = "action"  # the drift parameter that scales the agent's actions instead of a physical one


@dataclass(frozen=True)
class DriftConfig:
    """Change a physical parameter of the environment, or the actuator, part-way through a run."""

    at_step: int | None = None
    """Total environment step (counted over the whole run) at which the change happens; None never."""
    parameter: str = "l"
    """Attribute of the unwrapped environment to change (Pendulum-v1: m, l, g, max_torque), or 'action' to scale every action before the environment sees it (a weaker, stronger or, with a negative scale, reversed actuator: the task stays exactly as hard, only the dynamics the model learned no longer hold)."""
    scale: float = 1.5
    """The parameter (or action) is multiplied by this factor."""

    def validate(self) -> None:
        if self.at_step is None:
            return
        require(self.at_step >= 0, "drift.at_step", "must be non-negative")
        if self.parameter == ACTION:
            require(self.scale != 0, "drift.scale", "must not be 0 (no action would act)")
        else:
            require(self.scale > 0, "drift.scale", "must be positive for a physical parameter")


class DynamicsDrift(gym.Wrapper):
    """Changes the dynamics once `at_step` steps have been taken through this wrapper (across
    episodes): multiplies `env.unwrapped.<parameter>` by `scale`, or every action when the
    parameter is 'action'. `total_steps` can be set when a run resumes.

    An evaluation copy passes `clock=<the training wrapper>`: it then never counts its own steps
    and always has the dynamics the training environment has at that moment."""

    def __init__(
        self,
        env: gym.Env,
        config: DriftConfig,
        total_steps: int = 0,
        clock: DynamicsDrift | None = None,
    ):
        super().__init__(env)
        self.config, self.total_steps, self.clock = config, total_steps, clock
        self.original = None if config.parameter == ACTION else self._read_parameter(env)
        self.step_clock_changed()

    def _read_parameter(self, env: gym.Env) -> float:
        name = self.config.parameter
        if not hasattr(env.unwrapped, name):
            raise ConfigError(
                "drift.parameter",
                f"{env.unwrapped.__class__.__name__} has no attribute '{name}' to change "
                f"(or use '{ACTION}' to scale the actions)",
            )
        value = getattr(env.unwrapped, name)
        if not isinstance(value, int | float):
            raise ConfigError("drift.parameter", f"'{name}' is not a number ({value!r})")
        return float(value)

    @property
    def drifted(self) -> bool:
        steps = (self.clock or self).total_steps
        return self.config.at_step is not None and steps >= self.config.at_step

    def step_clock_changed(self) -> None:
        """Apply the parameter value that belongs to the current step count."""
        if self.original is not None:
            scale = self.config.scale if self.drifted else 1.0
            setattr(self.env.unwrapped, self.config.parameter, self.original * scale)

    def reset(self, **kwargs):
        self.step_clock_changed()
        return self.env.reset(**kwargs)

    def step(self, action):
        self.step_clock_changed()  # an evaluation copy follows its clock
        if self.original is None and self.drifted:
            action = np.asarray(action) * np.float32(self.config.scale)
        result = self.env.step(action)
        if self.clock is None:
            self.total_steps += 1
            self.step_clock_changed()  # the change takes effect from the next step on
        return result
