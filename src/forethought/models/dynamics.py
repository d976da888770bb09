"""The dynamics model: an ensemble that predicts the change of state (and optionally reward and
termination) from (state, action), with input and target normalisation built in.

Targets are deltas (next_obs - obs), normalised per dimension; a probabilistic model outputs a
Gaussian per member whose log-variance is softly bounded by learned limits, as in PETS
(Chua et al. 2018), so it can neither collapse to zero nor explode on unseen inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from forethought.errors import require
from forethought.models.ensemble import ACTIVATIONS, EnsembleLinear, EnsembleMLP
from forethought.models.uncertainty import member_variance
from forethought.types import ModelPrediction

INITIAL_MAX_LOGVAR, INITIAL_MIN_LOGVAR = 0.5, -10.0  # learned soft bounds, normalised units
SURPRISE_VARIANCE_FLOOR = 1e-6  # a deterministic single model predicts no variance at all


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the dynamics ensemble."""

    ensemble_size: int = 5
    """Number of ensemble members E; their disagreement is the epistemic uncertainty."""
    hidden_size: int = 64
    """Units in each hidden layer (PETS used 200; 64 is plenty for classic control and keeps planning fast on a laptop CPU)."""
    num_hidden_layers: int = 3
    """Number of hidden layers."""
    probabilistic: bool = True
    """Gaussian outputs with bounded learned variance (PETS); False gives a deterministic MSE model."""
    activation: Literal["silu", "relu", "tanh", "elu"] = "silu"
    """Hidden-layer nonlinearity."""

    def validate(self) -> None:
        require(self.ensemble_size >= 1, "model.ensemble_size", "must be at least 1")
        require(self.hidden_size >= 1, "model.hidden_size", "must be at least 1")
        require(self.num_hidden_layers >= 0, "model.num_hidden_layers", "must be 0 or more")
        require(self.activation in ACTIVATIONS, "model.activation", f"one of {list(ACTIVATIONS)}")


LOGVAR_BOUND_PENALTY = 0.01  # PETS' weight on keeping the learned log-variance limits tight


class DynamicsModel(nn.Module):
    """Predicts next observation (and optionally reward, termination) for a batch, per member."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        config: ModelConfig,
        learn_reward: bool = False,
        learn_termination: bool = False,
    ):
        super().__init__()
        config.validate()
        self.obs_dim, self.action_dim, self.config = obs_dim, action_dim, config
        self.learn_reward, self.learn_termination = learn_reward, learn_termination
        self.ensemble_size = config.ensemble_size
        self.target_dim = obs_dim + int(learn_reward)  # delta obs, then reward
        out = self.target_dim * (2 if config.probabilistic else 1) + int(learn_termination)
        self.net = EnsembleMLP(
            config.ensemble_size,
            obs_dim + action_dim,
            out,
            config.hidden_size,
            config.num_hidden_layers,
            config.activation,
        )
        self.max_logvar = nn.Parameter(torch.full((1, 1, self.target_dim), INITIAL_MAX_LOGVAR))
        self.min_logvar = nn.Parameter(torch.full((1, 1, self.target_dim), INITIAL_MIN_LOGVAR))
        in_dim = obs_dim + action_dim
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))
        self.register_buffer("target_mean", torch.zeros(self.target_dim))
        self.register_buffer("target_std", torch.ones(self.target_dim))

    @torch.no_grad()
    def reinitialize(self) -> None:
        """Fresh member weights and log-variance bounds (normalisation statistics are kept)."""
        for module in self.net.modules():
            if isinstance(module, EnsembleLinear):
                module.reset_parameters()
        self.max_logvar.fill_(INITIAL_MAX_LOGVAR)
        self.min_logvar.fill_(INITIAL_MIN_LOGVAR)

    # ---- normalisation ------------------------------------------------------------------
    def make_inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs, action], dim=-1)

    def make_targets(
        self, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor | None
    ) -> torch.Tensor:
        delta = next_obs - obs
        return torch.cat([delta, reward.unsqueeze(-1)], -1) if self.learn_reward else delta

    @torch.no_grad()
    def set_normalization(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Fit the per-dimension mean and std of inputs (N x In) and targets (N x T)."""
        # A floor on the std keeps constant dimensions (e.g. a velocity clipped at its limit)
        # from being divided by zero.
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(inputs.std(0, unbiased=False).clamp_min(1e-6))
        self.target_mean.copy_(targets.mean(0))
        self.target_std.copy_(targets.std(0, unbiased=False).clamp_min(1e-6))

    # ---- the network in normalised units ------------------------------------------------
    def forward_normalized(
        self, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(E x B x In) raw inputs -> normalised target mean and log-variance (E x B x T) and
        the termination logit (E x B)."""
        out = self.net((inputs - self.input_mean) / self.input_std)
        t = self.target_dim
        mean = out[..., :t]
        logvar = None
        if self.config.probabilistic:
            logvar = out[..., t : 2 * t]
            logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
            logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        term_logit = out[..., -1] if self.learn_termination else None
        return mean, logvar, term_logit

    def loss(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        terminated: torch.Tensor | None,
        nll_beta: float = 0.0,
    ) -> torch.Tensor:
        """Training loss on E x B x In inputs and E x B x T raw targets, summed over members.

        With `nll_beta` > 0 the Gaussian NLL of each element is weighted by its (detached)
        predicted variance to the power beta (beta-NLL, Seitzer et al. 2022). Plain NLL
        (beta = 0) lets confidently-fit regions dominate the gradient, so a warm-started model
        barely moves its mean where new data disagrees with it; beta = 0.5 fixes that without
        changing which variance is optimal.
        """
        mean, logvar, term_logit = self.forward_normalized(inputs)
        target = (targets - self.target_mean) / self.target_std
        if logvar is None:
            per_member = ((mean - target) ** 2).mean(dim=(1, 2))
        else:
            nll = (mean - target) ** 2 * torch.exp(-logvar) + logvar
            if nll_beta > 0:
                nll = nll * torch.exp(nll_beta * logvar.detach())
            per_member = nll.mean(dim=(1, 2))
        total = per_member.sum()
        if logvar is not None:
            total = total + LOGVAR_BOUND_PENALTY * (self.max_logvar.sum() - self.min_logvar.sum())
        if term_logit is not None and terminated is not None:
            bce = F.binary_cross_entropy_with_logits(
                term_logit, terminated.float(), reduction="none"
            )
            total = total + bce.mean(dim=1).sum()
        return total

    @torch.no_grad()
    def holdout_scores(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member (E) mean squared error of the normalised mean, and Gaussian NLL (equal to
        the MSE for a deterministic model), on B x In inputs and B x T targets."""
        mean, logvar, _ = self.forward_normalized(inputs.expand(self.ensemble_size, *inputs.shape))
        target = (targets - self.target_mean) / self.target_std
        squared = (mean - target) ** 2
        mse = squared.mean(dim=(1, 2))
        if logvar is None:
            return mse, mse
        return mse, (squared * torch.exp(-logvar) + logvar).mean(dim=(1, 2))

    @torch.no_grad()
    def surprise(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per row (B): the squared error of the ensemble's mean prediction divided by the
        ensemble's own predicted variance (mean aleatoric variance + spread of member means),
        averaged over target dimensions, in normalised units. About 1 where the model is
        calibrated; large where it is confidently wrong. Unlike the plain error it stays moderate
        in regions the model knows it predicts poorly (there the members disagree or the
        predicted noise is large), so changed dynamics stand out from merely harder states."""
        mean, logvar, _ = self.forward_normalized(inputs.expand(self.ensemble_size, *inputs.shape))
        target = (targets - self.target_mean) / self.target_std
        variance = member_variance(mean)
        if logvar is not None:
            variance = variance + logvar.exp().mean(0)
        squared = (mean.mean(0) - target) ** 2
        return (squared / variance.clamp_min(SURPRISE_VARIANCE_FLOOR)).mean(-1)

    # ---- prediction in raw units --------------------------------------------------------
    def predict(self, obs: torch.Tensor, action: torch.Tensor) -> ModelPrediction:
        """Per-member prediction. obs: E x B x O (row b of member e) or B x O (every member sees
        every row); action likewise with A."""
        if obs.dim() == 2:
            obs = obs.expand(self.ensemble_size, *obs.shape)
            action = action.expand(self.ensemble_size, *action.shape)
        assert obs.shape[-1] == self.obs_dim and action.shape[-1] == self.action_dim, (
            f"obs {tuple(obs.shape)} / action {tuple(action.shape)} do not match "
            f"O={self.obs_dim}, A={self.action_dim}"
        )
        mean, logvar, term_logit = self.forward_normalized(self.make_inputs(obs, action))
        target_mean = mean * self.target_std + self.target_mean  # E x B x T
        if logvar is None:
            target_var = torch.zeros_like(target_mean)
        else:
            target_var = torch.exp(logvar) * self.target_std**2
        o = self.obs_dim
        return ModelPrediction(
            next_obs_mean=obs + target_mean[..., :o],
            next_obs_var=target_var[..., :o],
            reward=target_mean[..., o] if self.learn_reward else None,
            terminated_logit=term_logit,
        )
