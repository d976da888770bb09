"""A self-training run's configuration, the prompt sets it draws, and its per-step seeds.

`forethought lm selftrain --help` lists every field of `SelfTrainConfig` with its default (tyro
reads the one-line docstring under each field). A run saves the resolved config as config.json
and a resume reads it back from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from forethought.errors import ConfigError, DataError
from forethought.lm.artifacts.finetune import LoraSettings
from forethought.lm.artifacts.shipped import SHIPPED
from forethought.runtime import check_device

HELD_OUT_SEED = 40_000  # problem seeds: held-out evaluation prompts (the same for every run seed)
TRAIN_SEED = 50_000  # + run seed: training prompts
VALUE_SEED = 60_000  # + run seed: prompts whose fresh samples refit the predictor


@dataclass(frozen=True)
class SelfTrainConfig:
    """Everything a self-training run needs; saved as the run directory's config.json."""

    task: Literal["countdown"] = "countdown"
    """Built-in task whose prompts, verifier and shipped models are used."""
    iterations: int = 3
    """Self-training iterations after iteration 0 (which only evaluates the starting policy)."""
    seed: int = 0
    """Seed for training prompts, sampling and LoRA initialisation."""
    train_prompts: int = 500
    """Training prompts searched every iteration."""
    eval_prompts: int = 200
    """Held-out prompts every iteration is evaluated on."""
    value_prompts: int = 300
    """Prompts whose fresh samples refit the value predictor."""
    samples: int = 8
    """Plain samples per held-out or value-refit prompt."""
    collect: Literal["lookahead", "bon"] = "lookahead"
    """Search that collects the training data: value-guided look-ahead or Best-of-N."""
    collect_budget: int = 256
    """Tokens per training prompt for the collecting search."""
    eval_budget: int = 128
    """Tokens per held-out prompt for Best-of-N and look-ahead."""
    max_new_tokens: int = 24
    """Response length cap in tokens."""
    prefix_tokens: int = 6
    """Look-ahead: prefix length in tokens that the value predictor ranks."""
    keep: float = 0.25
    """Look-ahead: fraction of branches continued to the end."""
    filter: Literal["threshold", "topk"] = "threshold"
    """Keep responses whose reward is at least --threshold, or the --top-k best per prompt."""
    filter_reward: Literal["gold", "proxy"] = "gold"
    """Reward the filter reads: the gold verifier or the proxy reward model."""
    threshold: float = 1.0
    """With --filter threshold: the lowest reward kept (1.0 keeps solved answers only)."""
    top_k: int = 1
    """With --filter topk: responses kept per prompt."""
    max_per_prompt: int = 4
    """Most distinct responses kept per prompt."""
    accumulate: bool = False
    """Fine-tune on the kept data of all iterations so far, not only this one's."""
    init: Literal["previous", "base"] = "previous"
    """Start each fine-tune from the previous iteration's adapter, or from a fresh one on the base."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (the update is scaled by alpha / rank)."""
    lr: float = 1e-3
    """Fine-tune peak learning rate."""
    epochs: float = 2.0
    """Fine-tune passes over the kept data."""
    batch_size: int = 32
    """Fine-tune batch size."""
    value: Literal["hidden", "minilm"] = "hidden"
    """Value predictor: ridge on the generator's hidden states, or on MiniLM embeddings."""
    assets: str = ""
    """Directory of Countdown models (empty: the models shipped with the package)."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""

    def validate(self) -> SelfTrainConfig:
        positive = ("train_prompts", "eval_prompts", "value_prompts", "samples", "top_k")
        check_fields(self, (*positive, "max_per_prompt", "lora_r", "lora_alpha", "batch_size"))
        if self.iterations < 0:
            raise ConfigError("iterations", f"must be >= 0, got {self.iterations}")
        if self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("--lr/--epochs", "must be > 0")
        if not 0 < self.prefix_tokens < self.max_new_tokens:
            raise ConfigError(
                "prefix_tokens", f"must be in 1..{self.max_new_tokens - 1} (below --max-new-tokens)"
            )
        if not 0 < self.keep < 1:
            raise ConfigError("keep", f"must be a fraction in (0, 1), got {self.keep}")
        for name in ("collect_budget", "eval_budget"):
            if getattr(self, name) < 2 * self.max_new_tokens:
                raise ConfigError(
                    name,
                    f"{getattr(self, name)} tokens is under two answers of --max-new-tokens "
                    f"{self.max_new_tokens}; raise it to at least {2 * self.max_new_tokens}",
                )
        check_device(self.device)
        return self

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> SelfTrainConfig:
        """The config saved in a run directory; anything else is a one-line error naming it."""
        hint = (
            "; it looks like a control run: continue it with `forethought train --resume DIR`"
            if isinstance(data, dict) and "env" in data
            else ""
        )
        return config_from_dict(cls, data, source, "a self-training run's", hint)

    def replace(self, **changes: Any) -> SelfTrainConfig:
        return dataclasses.replace(self, **changes).validate()

    @property
    def lora(self) -> LoraSettings:
        return LoraSettings(
            r=self.lora_r,
            alpha=self.lora_alpha,
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
        )

    @property
    def assets_dir(self) -> Path:
        return Path(self.assets) if self.assets else SHIPPED


def check_fields(config: Any, at_least_one: tuple[str, ...]) -> None:
    """Every Literal field holds one of its choices; every field named is at least 1."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        allowed = typing.get_args(hints[f.name]) if "Literal" in str(hints[f.name]) else ()
        if allowed and getattr(config, f.name) not in allowed:
            raise ConfigError(f.name, f"must be one of {', '.join(allowed)}")
    for name in at_least_one:
        if getattr(config, name) < 1:
            raise ConfigError(name, f"must be at least 1, got {getattr(config, name)}")


def config_from_dict(cls, data: Any, source: Path, what: str, hint: str = ""):
    """A config dataclass from a run directory's config.json, validated; anything else is a
    one-line error naming the file (`what`: whose configuration it should have been)."""
    if not isinstance(data, dict):
        raise DataError(f"{source} does not hold a configuration object")
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise DataError(
            f"{source} is not {what} configuration (unknown fields: {', '.join(unknown[:5])}){hint}"
        )
    try:
        return cls(**data).validate()
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            reason = str(err)
        else:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{source} is damaged ({reason}); restore it or start a new run") from None


def step_seed(seed: int, iteration: int, step: str) -> int:
    """A seed for one step of one iteration that does not depend on what ran before it."""
    digest = hashlib.sha256(f"{seed}/{iteration}/{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
