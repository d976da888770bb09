"""The cross-entropy method over sequences of discrete actions.

Candidates are one-hot sequences (B x P x H x n), so the objective contract is the continuous
planners' own. The sampling distribution is one categorical per step; each iteration refits it
to the elites' action frequencies, with momentum, and the best sequence scored is executed.
"""

from __future__ import annotations

import torch

from forethought.errors import require
from forethought.planners.base import BestSequence, Objective, Planner, PlanResult, elites_of


class DiscreteCEM(Planner):
    """CEM with a categorical distribution per step over n actions (one-hot bounds [0, 1]^n).

    A warm start (the last plan, shifted) is scored as a candidate and pulls the initial
    distribution halfway towards itself, so a good plan is kept but not locked in.
    """

    @property
    def center(self) -> torch.Tensor:
        """The uniform distribution: what a step without a warm start starts from."""
        return torch.full_like(self.lower, 1.0 / self.action_dim)

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
        probs = (self.initial_mean(batch, initial) + self.center) / 2  # B x H x n
        best = BestSequence(_one_hot(probs.argmax(-1), self.action_dim))
        for iteration in range(cfg.iterations):
            candidates = self.sample(probs, cfg.population, generator)  # B x P x H x n
            if iteration == 0 and initial is not None:
                candidates[:, 0] = _one_hot(initial.argmax(-1), self.action_dim)
            scores = self.score(objective, candidates)
            frequencies = elites_of(candidates, scores, cfg.elites).mean(dim=1)  # B x H x n
            probs = cfg.momentum * probs + (1 - cfg.momentum) * frequencies
            best.update(candidates, scores)
        return PlanResult(
            actions=best.actions, score=best.score, evaluations=cfg.population * cfg.iterations
        )

    def sample(self, probs: torch.Tensor, population: int, generator) -> torch.Tensor:
        """`population` one-hot sequences per problem from the per-step categoricals."""
        b, h, n = probs.shape
        flat = probs.reshape(b * h, n).clamp_min(0)
        index = torch.multinomial(flat, population, replacement=True, generator=generator)
        index = index.view(b, h, population).transpose(1, 2)  # B x P x H
        return _one_hot(index, n)


def _one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(index, n).float()
