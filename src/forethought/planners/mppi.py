"""Model predictive path integral control (MPPI; Williams et al. 2017).

Perturb the current mean sequence with Gaussian noise, weight each candidate by the softmax
of its score over a temperature, and move the mean to the weighted average.
"""

from __future__ import annotations

import torch

from forethought.errors import require
from forethought.planners.base import Objective, Planner, PlanResult, best_of


class MPPI(Planner):
    """Iterated MPPI with a fixed noise scale; the weighted mean is executed."""

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
        std = cfg.init_std * (self.upper - self.lower)  # A
        best_score = torch.full((batch,), -torch.inf, device=mean.device)
        for _ in range(cfg.iterations):
            noise = torch.randn(
                batch, cfg.population, *mean.shape[1:], generator=generator, device=mean.device
            )
            candidates = self.clip(mean.unsqueeze(1) + std * noise)  # B x P x H x A
            candidates[:, 0] = mean  # the current mean competes too
            scores = self.score(objective, candidates)
            # Normalise scores per problem so the temperature means the same thing for any
            # reward scale: weights = softmax((s - max) / (temperature * spread)).
            spread = (
                scores.max(1, keepdim=True).values - scores.min(1, keepdim=True).values
            ).clamp_min(1e-8)
            spread = torch.nan_to_num(spread, posinf=1.0)
            weights = torch.softmax(
                (scores - scores.max(1, keepdim=True).values) / (cfg.temperature * spread), dim=1
            )
            weights = torch.nan_to_num(weights)
            mean = (weights.view(*weights.shape, 1, 1) * candidates).sum(dim=1)
            best_score = torch.maximum(best_of(candidates, scores)[1], best_score)
        return PlanResult(
            actions=mean, score=best_score, evaluations=cfg.population * cfg.iterations
        )
