"""Hybrids of a learned policy and the planner, both built from one MBPO run (its SAC policy
and critic, its dynamics ensemble).

- `GuidedMPCAgent`: iCEM whose candidates include the policy's own imagined trajectories and
  whose objective adds the critic's value at the horizon's end (as TD-MPC2 does), so a short
  horizon and a small population suffice.
- `SwitchingAgent`: the policy acts alone, and the planner is consulted only for observations
  where the ensemble's disagreement about the policy's action says the policy is on
  unfamiliar ground (more disagreement than a set quantile of what the real data shows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from forethought.agents.mpc import MPCAgent
from forethought.models.dynamics import DynamicsModel
from forethought.models.uncertainty import member_variance, normalised_std
from forethought.models.value import StateValue
from forethought.rollout import RolloutConfig

if TYPE_CHECKING:
    from stable_baselines3 import SAC


class PolicyPrior:
    """SB3 SAC's actor and twin critic as batched torch functions in environment units."""

    def __init__(self, sac: SAC):
        self.sac = sac
        space = sac.action_space
        self.low = torch.as_tensor(space.low, dtype=torch.float32, device=sac.device)
        self.high = torch.as_tensor(space.high, dtype=torch.float32, device=sac.device)
        self.gamma = float(sac.gamma)

    def _to_env(self, scaled: torch.Tensor) -> torch.Tensor:
        return self.low + (scaled + 1.0) * 0.5 * (self.high - self.low)

    def _to_scaled(self, action: torch.Tensor) -> torch.Tensor:
        return 2.0 * (action - self.low) / (self.high - self.low) - 1.0

    def _mean_and_std(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The squashed Gaussian's pre-tanh mean and std (one actor pass, no SB3 distribution
        objects: this runs inside the planner's inner loop)."""
        mean, log_std, _ = self.sac.actor.get_action_dist_params(flat)
        return mean, log_std.exp()

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """... x O observations -> ... x A actions (environment units)."""
        flat = obs.reshape(-1, obs.shape[-1])
        mean, std = self._mean_and_std(flat)
        pre = mean if deterministic else mean + std * torch.randn_like(mean)
        return self._to_env(torch.tanh(pre)).view(*obs.shape[:-1], -1)

    @torch.inference_mode()
    def act_mixed(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """B x S x O -> B x S x A: the mean action for s = 0, sampled ones for the others."""
        b, s, _ = obs.shape
        mean, std = self._mean_and_std(obs.reshape(b * s, -1))
        noise = torch.randn(mean.shape, generator=generator, device=mean.device).view(b, s, -1)
        noise[:, 0] = 0.0
        pre = mean.view(b, s, -1) + std.view(b, s, -1) * noise
        return self._to_env(torch.tanh(pre))

    @torch.inference_mode()
    def sample(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """... x O -> ... x A actions drawn from the policy with `generator` (reproducible)."""
        flat = obs.reshape(-1, obs.shape[-1])
        mean, std = self._mean_and_std(flat)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return self._to_env(torch.tanh(mean + std * noise)).view(*obs.shape[:-1], -1)

    @torch.inference_mode()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """... x O -> ...: min over the twin critics of Q(s, policy's mean action)."""
        flat = obs.reshape(-1, obs.shape[-1])
        mean, _ = self._mean_and_std(flat)
        q = torch.stack(self.sac.critic(flat, torch.tanh(mean))).min(dim=0).values
        return q.view(obs.shape[:-1])


class GuidedMPCAgent(MPCAgent):
    """MPC with policy proposals and a value bootstrap at the horizon."""

    def __init__(
        self,
        *args,
        prior: PolicyPrior,
        proposals: int = 8,
        anchor: bool = False,
        sampled_anchor: bool = False,
        bootstrap: bool = True,
        pessimistic: bool = False,
        state_value: StateValue | None = None,
        untrusted_rollout: RolloutConfig | None = None,
        **kw,
    ):
        super().__init__(*args, state_value=state_value, **kw)
        if untrusted_rollout is not None:
            self.untrusted_rollout = untrusted_rollout
        self.prior, self.n_proposals, self.anchor = prior, proposals, anchor
        self.sampled_anchor = sampled_anchor
        # The value at the horizon: the critic's, unless a state value of the planner's own
        # behaviour is given; either at the critic's discount.
        critic_or_own = prior.value if state_value is None else state_value
        self.horizon_value = critic_or_own if bootstrap else None
        self.value_discount = prior.gamma
        self.pessimistic_value = pessimistic

    def warm_start(self, initial: torch.Tensor | None, proposals: torch.Tensor | None):
        """With `anchor`, the search starts at the actor's mean trajectory (the first proposal),
        or with `sampled_anchor` at one drawn from the actor (the second)."""
        if not self.anchor:
            return initial
        return proposals[:, 1 if self.sampled_anchor else 0].clone()

    def propose(self, obs: torch.Tensor) -> torch.Tensor | None:
        """S policy trajectories per problem, imagined through the ensemble mean: B x S x H x A
        (the first follows the policy's mean action, the rest sample from it)."""
        if self.n_proposals == 0:
            return None
        b, s, h = obs.shape[0], self.n_proposals, self.planner.config.horizon
        state = obs.unsqueeze(1).expand(b, s, -1)
        steps = []
        for _ in range(h):
            action = self.prior.act_mixed(state, self.generator)  # B x S x A
            steps.append(action)
            flat_state, flat_action = state.reshape(b * s, -1), action.reshape(b * s, -1)
            prediction = self.model.predict(flat_state, flat_action).next_obs_mean
            state = prediction.mean(dim=0).view(b, s, -1)
            self.compute.model_rows += self.model.ensemble_size * b * s
        return torch.stack(steps, dim=2)


def one_step_disagreement(
    model: DynamicsModel, obs: torch.Tensor, action: torch.Tensor
) -> torch.Tensor:
    """B: the members' disagreement about the next state, in normalised std units (the same
    measure the rollouts log)."""
    means = model.predict(obs, action).next_obs_mean  # E x B x O
    scale = model.target_std[: model.obs_dim] ** 2
    return normalised_std(member_variance(means), scale)


class SwitchingAgent:
    """The policy acts; rows whose (state, policy action) the ensemble disagrees on by more
    than `threshold` are handed to the planner."""

    def __init__(self, prior: PolicyPrior, planner: MPCAgent, threshold: float):
        self.prior, self.planner, self.threshold = prior, planner, threshold
        self.decisions = 0
        self.consulted = 0

    @classmethod
    def calibrated(
        cls, prior: PolicyPrior, planner: MPCAgent, real_obs: np.ndarray, quantile: float = 0.95
    ) -> SwitchingAgent:
        """Threshold = the `quantile` of the disagreement on the policy's actions at real
        states: the planner is consulted where the policy goes beyond what the data covers."""
        with torch.inference_mode():
            obs = torch.as_tensor(real_obs, dtype=torch.float32)
            d = one_step_disagreement(planner.model, obs, prior.act(obs))
        return cls(prior, planner, float(torch.quantile(d, quantile)))

    def reset(self) -> None:
        self.planner.reset()

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, np.float32))
        action = self.prior.act(obs_t)
        unfamiliar = one_step_disagreement(self.planner.model, obs_t, action) > self.threshold
        self.decisions += len(obs_t)
        if unfamiliar.any():
            picked = unfamiliar.numpy()
            self.consulted += int(picked.sum())
            sub_rows = None if rows is None else np.asarray(rows)[picked]
            planned = self.planner.act(obs_t[unfamiliar].numpy(), sub_rows)
            action[unfamiliar] = torch.as_tensor(planned)
        return action.numpy()
