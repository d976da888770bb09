"""Settings of an offline run (`forethought offline`): learning from a logged dataset alone."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from forethought.errors import ConfigError, require
from forethought.models.dynamics import ModelConfig
from forethought.models.fitting import FitConfig
from forethought.planners.base import PlannerConfig
from forethought.rollout import RolloutConfig
from forethought.runtime import check_device

OfflineAlgorithm = Literal["mopo", "morel", "bc"]


@dataclass(frozen=True)
class MOPOConfig:
    """MOPO: SAC on short rollouts of the learned model, rewards minus an uncertainty penalty."""

    penalty: float = 5.0
    """lambda: imagined reward r - lambda x u(s, a) (see --mopo.uncertainty); 0 turns the pessimism off. 5 (MOPO's paper's hopper-medium setting) scored at least as well as 1 on every tier benchmarks/offline.py measured: the same on Pendulum's two, 91.7 against 31.4 on hopper/medium and 150.9 against 121.5 on hopper/medium-replay."""
    uncertainty: Literal["disagreement", "aleatoric"] = "disagreement"
    """u(s, a). disagreement: the members' spread about the next state (std of their means, in units of each state dimension's std in the data, L2 norm over dimensions): large where the data never went. aleatoric: MOPO's paper, the largest predicted standard deviation among the members (raw units, L2 norm), which only grows off the data where the noise heads happen to."""
    rollout_length: int = 5
    """Steps of every imagined branch from a dataset state."""
    rollout_batch: int = 5_000
    """Branches started at every refresh."""
    rollout_every: int = 1_000
    """SAC gradient steps between refreshes of the imagined data."""
    retain_refreshes: int = 5
    """Imagined data is kept for this many refreshes (the model buffer's size)."""
    real_ratio: float = 0.05
    """Share of every SAC batch drawn from the dataset; the rest is imagined."""
    gamma: float = 0.99
    """SAC's discount."""
    learning_rate: float = 3e-4
    """SAC's learning rate (actor, critics, entropy)."""
    batch_size: int = 256
    """SAC's batch size."""
    hidden_size: int = 256
    """Width of SAC's two hidden layers."""

    def validate(self) -> None:
        require(self.penalty >= 0, "mopo.penalty", "must be 0 (no pessimism) or more")
        require(self.rollout_length >= 1, "mopo.rollout_length", "must be at least 1")
        require(self.rollout_batch >= 1, "mopo.rollout_batch", "must be at least 1")
        require(self.rollout_every >= 1, "mopo.rollout_every", "must be at least 1")
        require(self.retain_refreshes >= 1, "mopo.retain_refreshes", "must be at least 1")
        require(0 <= self.real_ratio <= 1, "mopo.real_ratio", "must be in [0, 1]")
        require(0 < self.gamma < 1, "mopo.gamma", "must be in (0, 1)")
        require(self.learning_rate > 0, "mopo.learning_rate", "must be positive")
        require(self.batch_size >= 1, "mopo.batch_size", "must be at least 1")
        require(self.hidden_size >= 1, "mopo.hidden_size", "must be at least 1")

    def model_capacity(self) -> int:
        return self.rollout_batch * self.rollout_length * self.retain_refreshes


@dataclass(frozen=True)
class MOReLConfig:
    """MOReL: plan in the learned model, where a state the members disagree on is absorbing."""

    threshold_quantile: float = 0.99
    """A rollout stops being trusted where the members' disagreement exceeds this quantile of their disagreement on the dataset's own transitions."""
    halt_penalty: float = 100.0
    """kappa: reward of every step after a rollout left the trusted region, below the worst reward predicted at that step."""

    def validate(self) -> None:
        require(0 < self.threshold_quantile <= 1, "morel.threshold_quantile", "must be in (0, 1]")
        require(self.halt_penalty >= 0, "morel.halt_penalty", "must be 0 or more")


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning: an MLP regressed on the dataset's actions (the floor to beat)."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per gradient step."""
    hidden_size: int = 256
    """Width of the two hidden layers."""

    def validate(self) -> None:
        require(self.learning_rate > 0, "bc.learning_rate", "must be positive")
        require(self.batch_size >= 1, "bc.batch_size", "must be at least 1")
        require(self.hidden_size >= 1, "bc.hidden_size", "must be at least 1")


@dataclass(frozen=True)
class OfflineConfig:
    """Learn a controller from a logged dataset alone: the environment is never stepped while learning; it only scores the result (--eval-episodes 0 turns even that off)."""

    dataset: str | None = None
    """Minari dataset id in the local store (see `forethought dataset list`)."""
    algo: OfflineAlgorithm = "mopo"
    """mopo: SAC on uncertainty-penalised imagined rollouts (see --mopo.*). morel: MPC in the learned model, distrusted where the members disagree (see --morel.*, --planning.*, --rollout.*). bc: behaviour cloning."""
    env: str | None = None
    """Environment for evaluation (default: the one the dataset was logged on)."""
    seed: int = 0
    """Seed for the model, the learner and the planner."""
    out: Path | None = None
    """Run directory (default: runs/offline/<dataset>-<algo>-seed<seed>)."""
    resume: Path | None = None
    """Continue the killed run in this directory; only --threads and --quiet may be given again."""
    gradient_steps: int = 20_000
    """mopo: SAC updates; bc: regression steps (morel learns only the model)."""
    eval_every: int = 2_000
    """Evaluate on the environment every this many gradient steps (and at the end)."""
    eval_episodes: int = 10
    """Evaluation episodes, seeds eval_seed + j (0: no evaluation)."""
    eval_seed: int = 1000
    """Evaluation episode j resets with seed eval_seed + j, the same for every method."""
    device: str = "cpu"
    """Torch device: cpu, cuda or cuda:N."""
    threads: int = 1
    """Torch CPU threads (0 keeps torch's default)."""
    quiet: bool = False
    """No progress bar or table (metrics are still written)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    mopo: MOPOConfig = field(default_factory=MOPOConfig)
    morel: MOReLConfig = field(default_factory=MOReLConfig)
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    bc: BCConfig = field(default_factory=BCConfig)

    def validate(self) -> None:
        if self.resume is None:
            require(
                bool(self.dataset), "dataset", "name a dataset (see `forethought dataset list`)"
            )
        require(self.gradient_steps >= 1, "gradient_steps", "must be at least 1")
        require(self.eval_every >= 1, "eval_every", "must be at least 1")
        require(self.eval_episodes >= 0, "eval_episodes", "must be 0 (no evaluation) or more")
        require(self.threads >= 0, "threads", "must be 0 (torch default) or more")
        check_device(self.device)
        self.model.validate()
        self.fit.validate()
        self.mopo.validate()
        self.morel.validate()
        self.bc.validate()
        if self.algo == "morel":
            self.planning.validate()
            self.rollout.validate(self.model.ensemble_size)
            require(
                self.model.ensemble_size > 1,
                "model.ensemble_size",
                "must be at least 2 for morel (distrust comes from disagreement)",
            )

    def run_dir(self) -> Path:
        name = str(self.dataset).replace("/", "_")
        return self.out or Path("runs/offline") / f"{name}-{self.algo}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> OfflineConfig:
        nested = {
            f.name: f.default_factory
            for f in dataclasses.fields(cls)
            if f.default_factory is not dataclasses.MISSING
        }
        try:
            kwargs = {
                k: nested[k](**v) if k in nested else v for k, v in data.items() if k != "kind"
            }
            for key in ("out", "resume"):
                if kwargs.get(key) is not None:
                    kwargs[key] = Path(kwargs[key])
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(
                "--resume", f"{source} is not an offline run's config ({exc})"
            ) from None
