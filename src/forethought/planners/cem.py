"""Random shooting and the cross-entropy method (CEM), as used by PETS."""

from __future__ import annotations

import torch

from forethought.errors import require
from forethought.planners.base import (
    BestSequence,
    Objective,
    Planner,
    PlanResult,
    best_of,
    elites_of,
)


class RandomShooting(Planner):
    """Score `population` uniformly random sequences (plus the warm start) and keep the best."""

    def plan(
        self,
        objective: Objective,
        batch=1,
        initial=None,
        elites=None,
        generator=None,
        proposals=None,
    ):
        require(proposals is None, "planner", "policy proposals need the icem planner")
        h, a, p = self.config.horizon, self.action_dim, self.config.population
        u = torch.rand(batch, p, h, a, generator=generator, device=self.lower.device)
        candidates = self.lower + u * (self.upper - self.lower)  # B x P x H x A
        if initial is not None:
            candidates[:, 0] = initial
        scores = self.score(objective, candidates)
        actions, score = best_of(candidates, scores)
        return PlanResult(actions=actions, score=score, evaluations=p)


class CEM(Planner):
    """Cross-entropy method: sample from a diagonal Gaussian over sequences, refit it to the
    elites, repeat. Returns the final mean, which averages out noise in the objective."""

    def plan(
        self,
        objective: Objective,
        batch=1,
        initial=None,
        elites=None,
        generator=None,
        proposals=None,
    ):
        require(proposals is None, "planner", "policy proposals need the icem planner")
        cfg = self.config
        mean = self.initial_mean(batch, initial)  # B x H x A
        std = self.initial_std(mean)
        best = BestSequence(mean)
        for _ in range(cfg.iterations):
            noise = torch.randn(
                batch, cfg.population, *mean.shape[1:], generator=generator, device=mean.device
            )
            candidates = self.clip(mean.unsqueeze(1) + std.unsqueeze(1) * noise)  # B x P x H x A
            scores = self.score(objective, candidates)
            mean, std = self.refit(mean, std, elites_of(candidates, scores, cfg.elites))
            best.update(candidates, scores)
        return PlanResult(
            actions=mean, score=best.score, evaluations=cfg.population * cfg.iterations
        )

    def initial_std(self, mean: torch.Tensor) -> torch.Tensor:
        return (self.config.init_std * (self.upper - self.lower)).expand_as(mean).clone()

    def refit(self, mean, std, elite):
        """Move mean and std towards the elites' statistics (B x K x H x A), with momentum."""
        m = self.config.momentum
        new_mean, new_std = elite.mean(dim=1), elite.std(dim=1, unbiased=False)
        return m * mean + (1 - m) * new_mean, m * std + (1 - m) * new_std
