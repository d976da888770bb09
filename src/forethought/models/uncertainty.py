"""The two kinds of uncertainty, read off an ensemble's prediction.

- epistemic: what the members disagree on, the variance of their means. It shrinks with data
  and is large where there was none, so it says "the model does not know here".
- aleatoric: the noise every member predicts, the mean of their variances. It stays however
  much data there is, so it says "the world is random here".

Their sum is the variance of the ensemble's mixture (law of total variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from forethought.types import ModelPrediction


@dataclass(frozen=True)
class Uncertainty:
    epistemic: torch.Tensor  # B x O: variance of the member means
    aleatoric: torch.Tensor  # B x O: mean of the member variances

    @property
    def total(self) -> torch.Tensor:
        return self.epistemic + self.aleatoric


def member_variance(means: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """The members' disagreement: the variance of their predictions along the leading E axis
    (E x ... -> ...). Every place that measures disagreement calls this."""
    return means.var(dim=0, unbiased=False, keepdim=keepdim)


def normalised_std(variance: torch.Tensor, target_variance: torch.Tensor) -> torch.Tensor:
    """A per-dimension variance (... x O) as one number per row: divided by the variance of the
    model's targets, averaged over dimensions, square-rooted (the units rollouts report)."""
    return (variance / target_variance).mean(dim=-1).sqrt()


def decompose(prediction: ModelPrediction) -> Uncertainty:
    """Split the per-member prediction (E x B x O means and variances) into its two parts."""
    means, variances = prediction.next_obs_mean, prediction.next_obs_var
    return Uncertainty(epistemic=member_variance(means), aleatoric=variances.mean(dim=0))
