"""Imagination: roll batches of action sequences through the learned model, with particles.

Particle layout. For B problems, P candidates and K particles per candidate there are
N = B*P*K imagined trajectories. They are stored member-major, E x M x O with M = N/E, so that
one batched forward pass moves every particle by one step:

- "tsinf" (trajectory sampling, PETS): particle k always uses member k mod E;
- "ts1": every step, rows are shuffled across members (a random member per row and step);
- "mean": every row goes through every member and the member means are averaged.

Rewards come from a known reward function of (obs, action, next_obs) when the task has one,
else from the model's learned reward head; no reward accrues after a predicted termination.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from forethought.errors import require
from forethought.models.dynamics import DynamicsModel

RewardFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]  # (...xO, ...xA, ...xO) -> ...
TerminationFn = Callable[[torch.Tensor], torch.Tensor]  # (... x O) -> ... bool
Propagation = Literal["tsinf", "ts1", "mean"]


@dataclass(frozen=True)
class RolloutConfig:
    """How imagined trajectories are propagated through the ensemble."""

    particles: int = 5
    """Imagined trajectories per candidate sequence K (a multiple of the ensemble size for ts1/tsinf)."""
    propagation: Propagation = "tsinf"
    """Which member moves each particle: tsinf (fixed per particle), ts1 (random per step), mean."""
    sample: bool = True
    """Sample next states from the predicted Gaussian (aleatoric noise) instead of using its mean."""
    discount: float = 1.0
    """Discount on imagined rewards."""

    def validate(self, ensemble_size: int) -> None:
        require(self.particles >= 1, "rollout.particles", "must be at least 1")
        require(0.0 < self.discount <= 1.0, "rollout.discount", "must be in (0, 1]")
        if self.propagation in ("ts1", "tsinf"):
            require(
                self.particles % ensemble_size == 0,
                "rollout.particles",
                f"must be a multiple of model.ensemble_size ({ensemble_size}) with "
                f"propagation '{self.propagation}', got {self.particles}",
            )


@dataclass
class Imagination:
    """What a batch of imagined rollouts produced."""

    returns: torch.Tensor  # B x P: mean over particles of the (discounted) return
    particle_returns: torch.Tensor  # B x P x K
    model_rows: int  # rows pushed through the network (members x inputs), for compute counts


class ComputeCounter:
    """Running totals of model compute, so comparisons are made at matched counts."""

    def __init__(self) -> None:
        self.model_rows = 0
        self.objective_rows = 0


def imagine(
    model: DynamicsModel,
    obs: torch.Tensor,
    actions: torch.Tensor,
    config: RolloutConfig,
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
    generator: torch.Generator | None = None,
) -> Imagination:
    """Roll out B x P x H x A action sequences from B x O start states."""
    b, p, h, a = actions.shape
    assert obs.shape == (b, model.obs_dim), (
        f"start states {tuple(obs.shape)} != {(b, model.obs_dim)}"
    )
    e, k = model.ensemble_size, config.particles
    mean_mode = config.propagation == "mean"
    groups = 1 if mean_mode else e  # leading dimension of the particle layout
    m = b * p * k // groups
    # Particle index k = k1 * groups + g; member-major layout (g, b, p, k1) -> groups x M.
    state = obs.view(1, b, 1, 1, -1).expand(groups, b, p, k // groups, -1).reshape(groups, m, -1)
    plan = (
        actions.view(1, b, p, 1, h, a)
        .expand(groups, b, p, k // groups, h, a)
        .reshape(groups, m, h, a)
    )
    total = torch.zeros(groups, m, device=obs.device)
    alive = torch.ones(groups, m, dtype=torch.bool, device=obs.device)
    rows = 0
    for t in range(h):
        action = plan[:, :, t]  # groups x M x A
        next_state, reward_hat, done_hat, used = _step(model, state, action, config, generator)
        rows += used
        reward = reward_fn(state, action, next_state) if reward_fn is not None else reward_hat
        done = termination_fn(next_state) if termination_fn is not None else done_hat
        total = total + torch.where(alive, (config.discount**t) * reward, 0.0)
        if done is not None:
            alive = alive & ~done
        state = next_state
    per_particle = total.view(groups, b, p, k // groups).permute(1, 2, 3, 0).reshape(b, p, k)
    return Imagination(
        returns=per_particle.mean(dim=-1), particle_returns=per_particle, model_rows=rows
    )


def _step(model, state, action, config, generator):
    """One imagined step for a groups x M x O state; returns next state, reward, done, rows."""
    if config.propagation == "mean":
        flat_state, flat_action = state[0], action[0]  # M x O, M x A
        pred = model.predict(flat_state, flat_action)  # every member sees every row
        next_mean = pred.next_obs_mean.mean(0, keepdim=True)  # 1 x M x O
        # Moment matching: total variance = mean aleatoric variance + spread of member means.
        next_var = pred.next_obs_var.mean(0, keepdim=True) + pred.next_obs_mean.var(
            0, unbiased=False, keepdim=True
        )
        reward = pred.reward.mean(0, keepdim=True) if pred.reward is not None else None
        logit = (
            pred.terminated_logit.mean(0, keepdim=True)
            if pred.terminated_logit is not None
            else None
        )
        rows = model.ensemble_size * flat_state.shape[0]
    else:
        perm = None
        if config.propagation == "ts1":
            n = state.shape[0] * state.shape[1]
            perm = torch.randperm(n, generator=generator, device=state.device)
            state = state.reshape(n, -1)[perm].view_as(state)
            action = action.reshape(n, -1)[perm].view_as(action)
        pred = model.predict(state, action)
        next_mean, next_var = pred.next_obs_mean, pred.next_obs_var
        reward, logit = pred.reward, pred.terminated_logit
        rows = state.shape[0] * state.shape[1]
        if perm is not None:  # undo the shuffle so particle identities are preserved
            inverse = torch.argsort(perm)
            next_mean, next_var = _unshuffle(next_mean, inverse), _unshuffle(next_var, inverse)
            reward = _unshuffle(reward, inverse) if reward is not None else None
            logit = _unshuffle(logit, inverse) if logit is not None else None
    if config.sample and model.config.probabilistic:
        noise = torch.randn(next_mean.shape, generator=generator, device=next_mean.device)
        next_state = next_mean + next_var.sqrt() * noise
    else:
        next_state = next_mean
    done = logit > 0 if logit is not None else None
    return next_state, reward, done, rows


def _unshuffle(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    shape = x.shape
    return x.reshape(shape[0] * shape[1], *shape[2:])[inverse].view(shape)
