"""Behaviour cloning: the logged actions regressed on the logged states (mean squared error in
the action space scaled to [-1, 1], a tanh output). The floor an offline method has to beat: it
copies the behaviour, mistakes included, and cannot be better than the average behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from forethought.data.offline import OfflineDataset
from forethought.trainers.offline_config import BCConfig


class BCLearner:
    def __init__(self, config: BCConfig, dataset: OfflineDataset, seed: int, device: str = "cpu"):
        self.config, self.device = config, torch.device(device)
        data = dataset.transitions
        obs_dim, action_dim = data.obs.shape[1], data.action.shape[1]
        self.low = torch.as_tensor(dataset.action_space.low, device=self.device)
        self.high = torch.as_tensor(dataset.action_space.high, device=self.device)
        self.obs = torch.as_tensor(data.obs, device=self.device)
        self.target = self._scale(torch.as_tensor(data.action, device=self.device))
        self.obs_mean, self.obs_std = self.obs.mean(0), self.obs.std(0).clamp_min(1e-6)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            h = config.hidden_size
            self.net = nn.Sequential(
                nn.Linear(obs_dim, h),
                nn.ReLU(),
                nn.Linear(h, h),
                nn.ReLU(),
                nn.Linear(h, action_dim),
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.steps, self.loss = 0, None

    def _scale(self, action: torch.Tensor) -> torch.Tensor:
        return (2 * (action - self.low) / (self.high - self.low) - 1).clamp(-1, 1)

    def _forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net((obs - self.obs_mean) / self.obs_std))  # in [-1, 1]

    def train(self, gradient_steps: int) -> None:
        n = len(self.obs)
        for _ in range(gradient_steps):
            rows = torch.randint(
                n, (self.config.batch_size,), generator=self.generator, device=self.device
            )
            loss = ((self._forward(self.obs[rows]) - self.target[rows]) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.loss = float(loss.detach())
        self.steps += gradient_steps

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        scaled = self._forward(torch.as_tensor(np.asarray(obs, np.float32), device=self.device))
        action = self.low + 0.5 * (scaled + 1) * (self.high - self.low)
        return action.cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "steps": self.steps,
            "loss": self.loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.steps, self.loss = state["steps"], state["loss"]

    def stats(self) -> dict[str, Any]:
        return {"bc_loss": self.loss}
