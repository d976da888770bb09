"""A learned state value V(s), the worth of a state beyond what a search looks ahead.

Fitted value iteration on real transitions: each round freezes the current network, computes
the targets r + discount * (1 - terminated) * V_frozen(s') for the whole buffer (a time-limit
truncation is not an end: it bootstraps), and regresses V on them for one pass of minibatches.
It evaluates the policy that collected the data (random at first, the planner later), which is
enough to rank states by how much future reward they still hold: how close a pole is to
falling, a cart to the edge.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from forethought.errors import require
from forethought.types import TransitionBatch


@dataclass(frozen=True)
class ValueConfig:
    """The learned state value used at the leaves of the search."""

    enabled: bool = True
    """Learn V(s) from the real transitions and add it at the leaves (discounted, after the leaf rollout if any)."""
    hidden_size: int = 64
    """Units in each of the two hidden layers."""
    rounds: int = 30
    """Fitted-value-iteration rounds per fit (one target refresh and one pass over the data each)."""
    batch_size: int = 256
    """Minibatch size."""
    learning_rate: float = 1e-3
    """Adam learning rate."""

    def validate(self) -> None:
        require(self.hidden_size >= 1, "value.hidden_size", "must be at least 1")
        require(self.rounds >= 1, "value.rounds", "must be at least 1")
        require(self.batch_size >= 1, "value.batch_size", "must be at least 1")
        require(self.learning_rate > 0, "value.learning_rate", "must be positive")


class StateValue(nn.Module):
    """V(s) with the inputs standardised by the statistics of the data it was last fitted on."""

    def __init__(self, obs_dim: int, config: ValueConfig):
        super().__init__()
        h = config.hidden_size
        self.net = nn.Sequential(
            nn.Linear(obs_dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1)
        )
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # ... x O -> ...
        return self.net((obs - self.obs_mean) / self.obs_std).squeeze(-1)


class ValueTrainer:
    """Fits a `StateValue` by fitted value iteration; owns its optimiser (checkpointed)."""

    def __init__(self, value: StateValue, config: ValueConfig, discount: float):
        self.value, self.config, self.discount = value, config, discount
        self.optimizer = torch.optim.Adam(value.parameters(), lr=config.learning_rate)

    def fit(self, data: TransitionBatch[np.ndarray], rng: np.random.Generator) -> float:
        """Returns the last round's mean squared TD error."""
        device = self.value.obs_mean.device
        batch = data.to_torch(device)
        self.value.obs_mean.copy_(batch.obs.mean(0))
        self.value.obs_std.copy_(batch.obs.std(0, unbiased=False).clamp_min(1e-6))
        continues = self.discount * (~batch.terminated).float()
        n, size = len(batch), min(self.config.batch_size, len(batch))
        loss = torch.zeros(())
        for _ in range(self.config.rounds):
            frozen = copy.deepcopy(self.value)
            with torch.no_grad():
                targets = batch.reward + continues * frozen(batch.next_obs)
            order = torch.as_tensor(rng.permutation(n), device=device)
            for start in range(0, n, size):
                rows = order[start : start + size]
                loss = ((self.value(batch.obs[rows]) - targets[rows]) ** 2).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
        return float(loss.detach())
