"""A self-training run's configuration and its directory on disk.

    RUN_DIR/config.json     the resolved SelfTrainConfig
    RUN_DIR/metrics.jsonl   one row per finished iteration, rebuilt from iter_K/metrics.json
    RUN_DIR/iter_K/         everything iteration K produced; it exists only once K finished

An iteration is built in `iter_K.tmp/` and renamed to `iter_K/` in one `os.replace`, and every
file is written to a temporary name first, so a kill at any moment leaves whole iterations only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from forethought.errors import ConfigError, DataError
from forethought.lm.assets import SHIPPED
from forethought.lm.finetune import LoraSettings

HELD_OUT_SEED = 40_000  # problem seeds: held-out evaluation prompts (the same for every run seed)
TRAIN_SEED = 50_000  # + run seed: training prompts
VALUE_SEED = 60_000  # + run seed: prompts whose fresh samples refit the predictor


def _opt(default, help: str, **choices):
    return field(default=default, metadata={"help": help, **choices})


@dataclass(frozen=True)
class SelfTrainConfig:
    """Everything a self-training run needs; `forethought lm selftrain --help` lists each field."""

    task: str = _opt("countdown", "built-in task", choices=("countdown",))
    iterations: int = _opt(3, "self-training iterations after iteration 0 (the starting policy)")
    seed: int = _opt(0, "seed for training prompts, sampling, LoRA initialisation")
    train_prompts: int = _opt(500, "training prompts searched every iteration")
    eval_prompts: int = _opt(200, "held-out prompts every iteration is evaluated on")
    value_prompts: int = _opt(300, "prompts whose fresh samples refit the value predictor")
    samples: int = _opt(8, "plain samples per held-out or value-refit prompt")
    collect: str = _opt(
        "lookahead", "search that collects the training data", choices=("lookahead", "bon")
    )
    collect_budget: int = _opt(256, "tokens per training prompt for the collecting search")
    eval_budget: int = _opt(128, "tokens per held-out prompt for Best-of-N and look-ahead")
    max_new_tokens: int = _opt(24, "response length cap in tokens")
    prefix_tokens: int = _opt(6, "look-ahead: prefix length the predictor ranks")
    keep: float = _opt(0.25, "look-ahead: fraction of branches continued to the end")
    filter: str = _opt(
        "threshold",
        "keep responses whose reward is >= --threshold, or the --top-k best per prompt",
        choices=("threshold", "topk"),
    )
    filter_reward: str = _opt(
        "gold", "reward the filter reads: gold verifier or proxy", choices=("gold", "proxy")
    )
    threshold: float = _opt(1.0, "filter=threshold: lowest reward kept (1.0 = solved only)")
    top_k: int = _opt(1, "filter=topk: responses kept per prompt")
    max_per_prompt: int = _opt(4, "most distinct responses kept per prompt")
    accumulate: bool = _opt(False, "fine-tune on the kept data of all iterations so far")
    init: str = _opt(
        "previous",
        "start each fine-tune from the previous iteration's adapter or a fresh one on the base",
        choices=("previous", "base"),
    )
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA alpha")
    lr: float = _opt(1e-3, "fine-tune peak learning rate")
    epochs: float = _opt(2.0, "fine-tune passes over the kept data")
    batch_size: int = _opt(32, "fine-tune batch size")
    value: str = _opt("hidden", "value predictor representation", choices=("hidden", "minilm"))
    assets: str = _opt("", "directory of Countdown models (default: the shipped ones)")
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda")

    def validate(self) -> SelfTrainConfig:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ConfigError(f"--{_flag(f.name)}", f"must be one of {', '.join(allowed)}")
        positive = ("train_prompts", "eval_prompts", "value_prompts", "samples", "top_k")
        for name in (*positive, "max_per_prompt", "lora_r", "lora_alpha", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{_flag(name)}", f"must be at least 1, got {getattr(self, name)}"
                )
        if self.iterations < 0:
            raise ConfigError("--iterations", f"must be >= 0, got {self.iterations}")
        if self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("--lr/--epochs", "must be > 0")
        if not 0 < self.prefix_tokens < self.max_new_tokens:
            raise ConfigError(
                "--prefix-tokens",
                f"must be in 1..{self.max_new_tokens - 1} (below --max-new-tokens)",
            )
        if not 0 < self.keep < 1:
            raise ConfigError("--keep", f"must be a fraction in (0, 1), got {self.keep}")
        for name in ("collect_budget", "eval_budget"):
            if getattr(self, name) < 2 * self.max_new_tokens:
                raise ConfigError(
                    f"--{_flag(name)}",
                    f"{getattr(self, name)} tokens is under two answers of --max-new-tokens "
                    f"{self.max_new_tokens}; raise it to at least {2 * self.max_new_tokens}",
                )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError("--device", f"use cpu or cuda[:N], got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("--device", "CUDA is not available here; use --device cpu")
        return self

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


def _flag(name: str) -> str:
    return name.replace("_", "-")


def step_seed(seed: int, iteration: int, step: str) -> int:
    """A seed for one step of one iteration that does not depend on what ran before it."""
    digest = hashlib.sha256(f"{seed}/{iteration}/{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# -- the run directory ------------------------------------------------------------------------
def atomic_write(path: Path, text: str) -> None:
    """Write `text` so that a reader sees either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """The files of one run; an iteration counts as finished once `iter_K/` exists."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def iter_dir(self, k: int) -> Path:
        return self.path / f"iter_{k}"

    @classmethod
    def create(cls, path: Path, config: SelfTrainConfig) -> RunDir:
        run = cls(path)
        if (run.path / "config.json").exists():
            raise ConfigError(
                "--out",
                f"{run.path} already holds a run; pass --resume {run.path} to continue it, "
                "or choose another --out",
            )
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
        return run

    def save_config(self, config: SelfTrainConfig) -> None:
        atomic_write(self.path / "config.json", json.dumps(asdict(config), indent=2))

    @classmethod
    def open(cls, path: Path) -> tuple[RunDir, SelfTrainConfig]:
        run = cls(path)
        cfg_path = run.path / "config.json"
        if not cfg_path.exists():
            raise ConfigError("--resume", f"no self-training run at {run.path} (no config.json)")
        try:
            config = SelfTrainConfig(**json.loads(cfg_path.read_text()))
        except (TypeError, json.JSONDecodeError) as err:
            raise DataError(f"{cfg_path} is not a self-training config: {err}") from err
        return run, config

    def finished(self) -> int:
        """Iterations finished in order from 0 (a gap ends the count)."""
        k = 0
        while (self.iter_dir(k) / "metrics.json").exists():
            k += 1
        return k

    def begin(self, k: int) -> Path:
        """A fresh scratch directory for iteration k (a killed attempt's leftovers removed)."""
        tmp = self.path / f"iter_{k}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, k: int, tmp: Path, metrics: dict) -> None:
        """Mark iteration k finished: metrics into the scratch dir, then one atomic rename."""
        atomic_write(tmp / "metrics.json", json.dumps(metrics, indent=1))
        os.replace(tmp, self.iter_dir(k))
        self.write_metrics()

    def rows(self) -> list[dict]:
        return [
            json.loads((self.iter_dir(k) / "metrics.json").read_text())
            for k in range(self.finished())
        ]

    def write_metrics(self) -> None:
        """Rebuild metrics.jsonl from the finished iterations (so it can never disagree)."""
        lines = "".join(json.dumps(r) + "\n" for r in self.rows())
        atomic_write(self.path / "metrics.jsonl", lines)

    def cleanup(self) -> None:
        for tmp in self.path.glob("iter_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
