"""A policy distilled from logged discrete actions: a classifier of which action the planner
took in each logged state (behaviour cloning, as AlphaZero's policy head learns the search's
choices). Tree search uses it to imagine how its own play continues far past its tree, in
rollouts that would cost thousands of searches to play for real (trainers/imagined_value.py).
"""

from __future__ import annotations

import torch
from torch import nn


class DistilledPolicy(nn.Module):
    """Logits over N discrete actions, with the inputs standardised by the fitted data."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_size: int = 64):
        super().__init__()
        h = hidden_size
        self.net = nn.Sequential(
            nn.Linear(obs_dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, num_actions)
        )
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # ... x O -> ... x N
        return self.net((obs - self.obs_mean) / self.obs_std)

    def fit(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        seed: int,
        steps: int = 500,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
    ) -> float:
        """Cross-entropy on (state, action index) pairs, `steps` Adam minibatch steps from fresh
        weights, all drawn from `seed`; returns the accuracy on the fitted data."""
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0, unbiased=False).clamp_min(1e-6))
        optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)
        size = min(batch_size, len(obs))
        for _ in range(steps):
            rows = torch.randint(len(obs), (size,), generator=generator).to(obs.device)
            loss = nn.functional.cross_entropy(self(obs[rows]), actions[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return float((self(obs).argmax(-1) == actions).float().mean())
