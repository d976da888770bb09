"""What every planner shares: the objective contract, the config, and the result.

A planner optimises action sequences against `objective(candidates) -> scores`, higher is
better. Candidates are B x P x H x A: B independent problems (for example one per evaluation
environment), P candidates each, horizon H, action size A; scores are B x P. No planner knows
what an environment or a model is, which is why each can be tested on toy functions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from forethought.errors import require

Objective = Callable[[torch.Tensor], torch.Tensor]  # (B x P x H x A) -> B x P

PlannerName = Literal["random", "cem", "icem", "mppi", "mcts", "discrete-cem"]


@dataclass(frozen=True)
class PlannerConfig:
    """Settings for the trajectory optimisers. Each field says which planners read it."""

    horizon: int = 20
    """Planning horizon H in steps (all)."""
    population: int = 100
    """Candidates sampled per iteration P (all; iCEM's first iteration)."""
    iterations: int = 3
    """Refinement iterations per plan (cem, icem, mppi; random uses 1)."""
    elites: int = 10
    """Top candidates that refit the sampling distribution (cem, icem)."""
    momentum: float = 0.1
    """Weight of the previous mean/std when refitting: new = m*old + (1-m)*elites (cem, icem)."""
    init_std: float = 0.5
    """Initial sampling std as a fraction of the action range (cem, icem, mppi)."""
    noise_beta: float = 2.0
    """Colour of the sampling noise along time: 0 white, 2 brown/smooth (icem)."""
    population_decay: float = 1.25
    """Population shrinks by this factor each iteration (icem)."""
    keep_elites: float = 0.3
    """Fraction of elites carried into the next iteration and, shifted, the next plan (icem)."""
    temperature: float = 0.1
    """Softmax temperature on scores; lower is greedier (mppi)."""

    def validate(self) -> None:
        require(self.horizon >= 1, "planning.horizon", "must be at least 1 step")
        require(self.population >= 1, "planning.population", "must be at least 1")
        require(self.iterations >= 1, "planning.iterations", "must be at least 1")
        require(
            1 <= self.elites <= self.population,
            "planning.elites",
            f"must be between 1 and planning.population ({self.population}), got {self.elites}",
        )
        require(0.0 <= self.momentum < 1.0, "planning.momentum", "must be in [0, 1)")
        require(self.init_std > 0, "planning.init_std", "must be positive")
        require(self.noise_beta >= 0, "planning.noise_beta", "must be non-negative")
        require(self.population_decay >= 1.0, "planning.population_decay", "must be at least 1")
        require(0.0 <= self.keep_elites <= 1.0, "planning.keep_elites", "must be in [0, 1]")
        require(self.temperature > 0, "planning.temperature", "must be positive")


@dataclass
class PlanResult:
    """A planner's answer for B problems."""

    actions: torch.Tensor  # B x H x A: the sequence to execute (its first step) and warm-start from
    score: torch.Tensor  # B: objective value of the best candidate evaluated
    evaluations: int  # candidate sequences scored per problem (objective rows / B)
    elites: torch.Tensor | None = None  # B x K x H x A kept for the next plan (icem)


class Planner(ABC):
    """Base class: bounds, config and the helpers every optimiser uses."""

    def __init__(self, config: PlannerConfig, lower: torch.Tensor, upper: torch.Tensor):
        config.validate()
        lower, upper = torch.as_tensor(lower).float(), torch.as_tensor(upper).float()
        require(
            lower.dim() == 1 and lower.shape == upper.shape,
            "action bounds",
            "must be 1-D, same shape",
        )
        require(
            bool((upper > lower).all()),
            "action bounds",
            "every upper bound must exceed its lower bound",
        )
        self.config, self.lower, self.upper = config, lower, upper
        self.action_dim = lower.shape[0]

    def to(self, device: str | torch.device) -> Planner:
        self.lower, self.upper = self.lower.to(device), self.upper.to(device)
        return self

    @property
    def center(self) -> torch.Tensor:
        return (self.lower + self.upper) / 2

    def initial_mean(self, batch: int, initial: torch.Tensor | None) -> torch.Tensor:
        """B x H x A: the warm start if given, else the middle of the action box."""
        h, a = self.config.horizon, self.action_dim
        if initial is None:
            return self.center.expand(batch, h, a).clone()
        assert initial.shape == (batch, h, a), (
            f"warm start {tuple(initial.shape)} != {(batch, h, a)}"
        )
        return initial.clone()

    def clip(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(actions, self.upper), self.lower)

    def score(self, objective: Objective, candidates: torch.Tensor) -> torch.Tensor:
        """Evaluate candidates (B x P x H x A), mapping NaN to -inf so they are never chosen."""
        scores = objective(candidates)
        assert scores.shape == candidates.shape[:2], (
            f"objective returned {tuple(scores.shape)}, expected {tuple(candidates.shape[:2])}"
        )
        return torch.nan_to_num(scores, nan=-torch.inf)

    @abstractmethod
    def plan(
        self,
        objective: Objective,
        batch: int = 1,
        initial: torch.Tensor | None = None,
        elites: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        proposals: torch.Tensor | None = None,
    ) -> PlanResult:
        """Optimise B independent action sequences; `initial` (B x H x A) warm-starts the
        search, `elites` (B x K x H x A) are candidates carried over from the last plan and
        `proposals` (B x S x H x A) candidates from a prior such as a policy, scored in every
        iteration (iCEM only)."""


def shift_plan(actions: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Drop the executed first step of B x H x A plans and append `fill` (A) at the end."""
    return torch.cat([actions[:, 1:], fill.expand(actions.shape[0], 1, -1)], dim=1)


def best_of(candidates: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, the highest-scoring candidate (B x H x A) and its score (B)."""
    best_score, best_idx = scores.max(dim=1)
    index = best_idx.view(-1, 1, 1, 1).expand(-1, 1, *candidates.shape[2:])
    return torch.gather(candidates, 1, index).squeeze(1), best_score


def elites_of(candidates: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """Per problem, the k highest-scoring candidates, best first: B x K x H x A."""
    top = scores.topk(k, dim=1).indices  # B x K
    index = top.view(*top.shape, 1, 1).expand(-1, -1, *candidates.shape[2:])
    return torch.gather(candidates, 1, index)


class BestSequence:
    """The best candidate scored so far in a plan, per problem in the batch."""

    def __init__(self, initial: torch.Tensor):  # B x H x A
        self.actions = initial
        self.score = torch.full((initial.shape[0],), -torch.inf, device=initial.device)

    def update(self, candidates: torch.Tensor, scores: torch.Tensor) -> None:
        it_best, it_score = best_of(candidates, scores)
        better = it_score > self.score
        self.actions = torch.where(better.view(-1, 1, 1), it_best, self.actions)
        self.score = torch.maximum(it_score, self.score)
