"""A GRPO run's configuration; saved as the run directory's config.json and read back on resume.

`forethought lm grpo --help` lists every field with its default (tyro reads the docstring under
each field). The held-out evaluation fields carry the same names and defaults as self-training's,
so both arms are judged by the same code on the same prompts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from forethought.errors import ConfigError
from forethought.lm.artifacts.finetune import LoraSettings
from forethought.lm.artifacts.shipped import SHIPPED
from forethought.lm.selftrain.config import check_fields, config_from_dict
from forethought.runtime import check_device

REWARDS = ("gold", "solved", "proxy")
"""Named training rewards; any other value is read as the path of a sequence classifier."""


@dataclass(frozen=True)
class GRPOConfig:
    """Everything a GRPO run needs; saved as the run directory's config.json."""

    task: Literal["countdown"] = "countdown"
    """Built-in task whose prompts, verifier and shipped models are used."""
    seed: int = 0
    """Seed for training prompts, sampling and (with --tuning lora) the adapter's initialisation."""
    steps: int = 300
    """Optimizer steps; each samples --generations completions for --prompts-per-step prompts."""
    prompts_per_step: int = 8
    """Training prompts per step (the group count)."""
    generations: int = 8
    """Completions sampled per prompt; GRPO's advantage is each one's reward against its group's."""
    train_prompts: int = 2000
    """Distinct training prompts, drawn in a seeded shuffle and revisited after an epoch."""
    reward: str = "gold"
    """Training reward: gold (the verifier, with partial credit), solved (the verifier's pass/fail: 1 for a solved answer, else 0), proxy (the shipped proxy reward model), or the path of any Hugging Face sequence classifier."""
    tuning: Literal["full", "lora"] = "full"
    """Update every weight, or a LoRA adapter (PEFT) on every linear layer."""
    lr: float = 1e-4
    """Adam learning rate (constant); 1e-3 suits --tuning lora."""
    lora_r: int = 16
    """LoRA rank (with --tuning lora)."""
    lora_alpha: int = 32
    """LoRA alpha (the update is scaled by alpha / rank)."""
    beta: float = 0.0
    """KL penalty to the starting policy (0: none, and no reference model is kept)."""
    temperature: float = 1.0
    """Sampling temperature of the training rollouts."""
    eval_every: int = 50
    """Steps between checkpoints; each is evaluated on the held-out prompts (and the last step always is)."""
    eval_prompts: int = 200
    """Held-out prompts every checkpoint is evaluated on (the same as self-training's)."""
    value_prompts: int = 300
    """Prompts whose fresh samples refit the value predictor that guides look-ahead at evaluation."""
    samples: int = 8
    """Plain samples per held-out or value-refit prompt."""
    eval_budget: int = 128
    """Tokens per held-out prompt for Best-of-N and look-ahead."""
    max_new_tokens: int = 24
    """Response length cap in tokens (rollouts and evaluation)."""
    prefix_tokens: int = 6
    """Look-ahead at evaluation: prefix length in tokens that the value predictor ranks."""
    keep: float = 0.25
    """Look-ahead at evaluation: fraction of branches continued to the end."""
    value: Literal["hidden", "minilm"] = "hidden"
    """Value predictor refitted at every checkpoint: ridge on hidden states or on MiniLM."""
    assets: str = ""
    """Directory of Countdown models (empty: the models shipped with the package)."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""

    def validate(self) -> GRPOConfig:
        check_fields(self, ("steps", "prompts_per_step", "train_prompts", "eval_every",
                            "eval_prompts", "value_prompts", "samples", "lora_r", "lora_alpha",
                            "max_new_tokens"))  # fmt: skip
        if self.generations < 2:
            raise ConfigError(
                "generations",
                f"must be at least 2, got {self.generations}: GRPO scores each completion "
                "against the others sampled for the same prompt",
            )
        if self.lr <= 0 or self.temperature <= 0:
            raise ConfigError("--lr/--temperature", "must be > 0")
        if self.beta < 0:
            raise ConfigError("beta", f"must be >= 0, got {self.beta}")
        if not 0 < self.prefix_tokens < self.max_new_tokens:
            raise ConfigError(
                "prefix_tokens", f"must be in 1..{self.max_new_tokens - 1} (below --max-new-tokens)"
            )
        if not 0 < self.keep < 1:
            raise ConfigError("keep", f"must be a fraction in (0, 1), got {self.keep}")
        if self.eval_budget < 2 * self.max_new_tokens:
            raise ConfigError(
                "eval_budget",
                f"{self.eval_budget} tokens is under two answers of --max-new-tokens "
                f"{self.max_new_tokens}; raise it to at least {2 * self.max_new_tokens}",
            )
        if self.reward not in REWARDS and not Path(self.reward).is_dir():
            raise ConfigError(
                "reward",
                f"{self.reward!r} is none of {', '.join(REWARDS)} and not a directory holding a "
                "sequence classifier saved with save_pretrained",
            )
        check_device(self.device)
        return self

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> GRPOConfig:
        """The config saved in a run directory; anything else is a one-line error naming it."""
        return config_from_dict(cls, data, source, "a GRPO run's")

    def replace(self, **changes: Any) -> GRPOConfig:
        return dataclasses.replace(self, **changes).validate()

    @property
    def assets_dir(self) -> Path:
        return Path(self.assets) if self.assets else SHIPPED

    @property
    def lora(self) -> LoraSettings:
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha, lr=self.lr)

    @property
    def rollouts_per_step(self) -> int:
        return self.prompts_per_step * self.generations
