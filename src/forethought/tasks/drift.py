"""A Gymnasium wrapper whose dynamics change at a given step, to test that a model-based agent
notices the change and adapts (distribution shift on purpose)."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from forethought.errors import ConfigError, require


@dataclass(frozen=True)
class DriftConfig:
    """Change a physical parameter of the environment part-way through a run."""

    at_step: int | None = None
    """Total environment step (counted over the whole run) at which the change happens; None never."""
    parameter: str = "l"
    """Attribute of the unwrapped environment to change (Pendulum-v1: m, l, g, max_torque)."""
    scale: float = 1.5
    """The parameter is multiplied by this factor."""

    def validate(self) -> None:
        if self.at_step is not None:
            require(self.at_step >= 0, "drift.at_step", "must be non-negative")
            require(self.scale > 0, "drift.scale", "must be positive")


class DynamicsDrift(gym.Wrapper):
    """Multiplies `env.unwrapped.<parameter>` by `scale` once `at_step` steps have been taken
    through this wrapper (across episodes). `total_steps` can be set when a run resumes."""

    def __init__(self, env: gym.Env, config: DriftConfig, total_steps: int = 0):
        super().__init__(env)
        if not hasattr(env.unwrapped, config.parameter):
            raise ConfigError(
                "drift.parameter",
                f"{env.unwrapped.__class__.__name__} has no attribute '{config.parameter}' to change",
            )
        value = getattr(env.unwrapped, config.parameter)
        if not isinstance(value, int | float):
            raise ConfigError(
                "drift.parameter", f"'{config.parameter}' is not a number ({value!r})"
            )
        self.config, self.original = config, float(value)
        self.total_steps = total_steps
        self.step_clock_changed()

    @property
    def drifted(self) -> bool:
        return self.config.at_step is not None and self.total_steps >= self.config.at_step

    def step_clock_changed(self) -> None:
        """Apply the parameter value that belongs to the current `total_steps`."""
        scale = self.config.scale if self.drifted else 1.0
        setattr(self.env.unwrapped, self.config.parameter, self.original * scale)

    def step(self, action):
        self.total_steps += 1
        result = self.env.step(action)
        self.step_clock_changed()  # the change takes effect from the next step on
        return result


def match_drift(source: DynamicsDrift, targets: list[gym.Env]) -> None:
    """Give evaluation environments the training environment's current dynamics."""
    value = getattr(source.unwrapped, source.config.parameter)
    for env in targets:
        setattr(env.unwrapped, source.config.parameter, value)
