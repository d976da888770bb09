"""Named batch types shared across modules.

Shapes are written beside each field: B is the batch, O the observation size, A the action
size, E the number of ensemble members, P candidates (population), H the planning horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Generic, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class TransitionBatch(Generic[Array]):
    """A batch of environment transitions (s, a, r, s', terminated, truncated)."""

    obs: Array  # B x O
    action: Array  # B x A
    reward: Array  # B
    next_obs: Array  # B x O
    terminated: Array  # B (bool): the episode ended inside the MDP; no bootstrap past it
    truncated: Array  # B (bool): the episode was cut by a time limit

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def to_torch(self, device: str | torch.device = "cpu") -> TransitionBatch[torch.Tensor]:
        """The same batch as float32 tensors (bool flags stay bool) on `device`."""

        def convert(x: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(x, device=device)
            return t if t.dtype == torch.bool else t.float()

        return TransitionBatch(**{f.name: convert(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, index) -> TransitionBatch[Array]:
        return TransitionBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True)
class ModelPrediction:
    """What a dynamics model predicts for a batch, per ensemble member."""

    next_obs_mean: torch.Tensor  # E x B x O
    next_obs_var: torch.Tensor  # E x B x O (zeros for a deterministic model)
    reward: torch.Tensor | None  # E x B, or None without a learned reward head
    terminated_logit: torch.Tensor | None  # E x B, or None without a learned termination head
