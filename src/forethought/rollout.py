"""Imagination: roll batches of action sequences through the learned model, with particles.

Particle layout. For B problems, P candidates and K particles per candidate there are
N = B*P*K imagined trajectories. They are stored member-major, E x M x O with M = N/E, so that
one batched forward pass moves every particle by one step:

- "tsinf" (trajectory sampling, PETS): particle k always uses member k mod E;
- "ts1": every step, each particle moves to a random member (a random rotation of the E particles
  of a set across the members, so every member still takes exactly a 1/E share of the rows);
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
from forethought.models.uncertainty import member_variance, normalised_std

RewardFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]  # (...xO, ...xA, ...xO) -> ...
TerminationFn = Callable[[torch.Tensor], torch.Tensor]  # (... x O) -> ... bool
CostFn = RewardFn  # (obs, action, next_obs) -> ... constraint cost per step
Propagation = Literal["tsinf", "ts1", "mean"]


@dataclass(frozen=True)
class RolloutConfig:
    """How imagined trajectories are propagated through the ensemble and scored."""

    particles: int = 5
    """Imagined trajectories per candidate sequence K (a multiple of the ensemble size for ts1/tsinf)."""
    propagation: Propagation = "tsinf"
    """Which member moves each particle: tsinf (fixed per particle), ts1 (random per step), mean."""
    sample: bool = True
    """Sample next states from the predicted Gaussian (aleatoric noise) instead of using its mean."""
    discount: float = 1.0
    """Discount on imagined rewards."""
    uncertainty_penalty: float = 0.0
    """Subtract this times the summed epistemic disagreement along a candidate's rollout from its score: > 0 is pessimistic (stay where the model is trusted), < 0 optimistic (explore)."""
    disagreement_threshold: float | None = None
    """Stop trusting a rollout once its disagreement passes this value (normalised std units): later steps earn the worst reward seen at that step instead of the model's prediction."""
    halt_penalty: float = 0.0
    """With a disagreement threshold: untrusted steps earn the worst reward seen at that step minus this (MOReL's absorbing state with penalty kappa)."""

    @property
    def uses_uncertainty(self) -> bool:
        """Whether the objective itself needs the per-step disagreement."""
        return self.uncertainty_penalty != 0 or self.disagreement_threshold is not None

    def validate(self, ensemble_size: int) -> None:
        require(self.particles >= 1, "rollout.particles", "must be at least 1")
        require(0.0 < self.discount <= 1.0, "rollout.discount", "must be in (0, 1]")
        require(self.halt_penalty >= 0, "rollout.halt_penalty", "must be 0 or more")
        if self.disagreement_threshold is not None:
            require(
                self.disagreement_threshold > 0,
                "rollout.disagreement_threshold",
                "must be positive",
            )
        if self.propagation in ("ts1", "tsinf"):
            require(
                self.particles % ensemble_size == 0,
                "rollout.particles",
                f"must be a multiple of model.ensemble_size ({ensemble_size}) with "
                f"propagation '{self.propagation}', got {self.particles}",
            )
        if self.uses_uncertainty:
            require(
                ensemble_size > 1,
                "model.ensemble_size",
                "must be at least 2 for uncertainty-aware objectives (disagreement needs members)",
            )


@dataclass
class Imagination:
    """What a batch of imagined rollouts produced."""

    returns: torch.Tensor  # B x P: mean over particles of the (discounted, trusted) return
    particle_returns: torch.Tensor  # B x P x K
    epistemic: torch.Tensor | None  # B x P x H: members' disagreement (normalised std) per step
    aleatoric: torch.Tensor | None  # B x P x H: mean predicted noise variance (normalised) per step
    model_rows: int  # rows pushed through the network (members x inputs), for compute counts
    final_state: torch.Tensor | None = None  # B x P x K x O: where each particle ends up
    final_alive: torch.Tensor | None = None  # B x P x K: not terminated within the horizon
    particle_costs: torch.Tensor | None = None  # B x P x K: summed constraint cost (with cost_fn)

    def scores(self, config: RolloutConfig) -> torch.Tensor:
        """The planning objective, B x P: return minus the configured uncertainty penalty."""
        if config.uncertainty_penalty == 0:
            return self.returns
        return self.returns - config.uncertainty_penalty * self.epistemic.sum(dim=-1)


class ComputeCounter:
    """Running totals of model compute, so comparisons are made at matched counts."""

    def __init__(self) -> None:
        self.model_rows = 0
        self.model_calls = 0  # forward passes of the ensemble (counted by tree search)


def imagine(
    model: DynamicsModel,
    obs: torch.Tensor,
    actions: torch.Tensor,
    config: RolloutConfig,
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
    generator: torch.Generator | None = None,
    uncertainty: bool = True,
    cost_fn: CostFn | None = None,
) -> Imagination:
    """Roll out B x P x H x A action sequences from B x O start states. With
    `uncertainty=False` the per-step uncertainty is not computed (it is None in the result)
    unless the objective itself needs it (a penalty or a disagreement threshold). With a
    `cost_fn` each particle's summed (undiscounted) constraint cost is returned too."""
    uncertainty = uncertainty or config.uses_uncertainty
    b, p, h, _ = actions.shape  # B x P x H x A
    assert obs.shape == (b, model.obs_dim), (
        f"start states {tuple(obs.shape)} != {(b, model.obs_dim)}"
    )
    layout = _Layout(
        b, p, h, config.particles, 1 if config.propagation == "mean" else model.ensemble_size
    )
    state, plan = layout.spread(obs, actions)
    m = layout.m
    total = torch.zeros(layout.groups, m, device=obs.device)
    cost = torch.zeros(layout.groups, m, device=obs.device) if cost_fn is not None else None
    alive = torch.ones(layout.groups, m, dtype=torch.bool, device=obs.device)
    trusted = torch.ones(1, m, dtype=torch.bool, device=obs.device)
    epistemic, aleatoric, rows = [], [], 0
    for t in range(h):
        if config.propagation == "ts1" and t > 0:  # at t = 0 the particles of a set coincide
            state, (total, alive, cost) = _rotate_members(state, [total, alive, cost], generator)
        action = plan[:, :, t]  # groups x M x A (equal across groups: no rotation needed)
        step = _step(model, state, action, config, generator, uncertainty)
        rows += step.rows
        reward = reward_fn(state, action, step.next_state) if reward_fn is not None else step.reward
        done = termination_fn(step.next_state) if termination_fn is not None else step.done
        if config.disagreement_threshold is not None:
            # Past the threshold the model's reward is not believed; the worst reward seen at
            # this step stands in, which is pessimistic whatever the sign of the rewards.
            trusted = trusted & (step.epistemic <= config.disagreement_threshold)
            reward = torch.where(trusted, reward, reward.min() - config.halt_penalty)
        total = total + torch.where(alive, (config.discount**t) * reward, 0.0)
        if cost_fn is not None:
            cost = cost + torch.where(alive, cost_fn(state, action, step.next_state), 0.0)
        if done is not None:
            alive = alive & ~done
        state = step.next_state
        epistemic.append(step.epistemic)
        aleatoric.append(step.aleatoric)

    return layout.imagination(total, cost, state, alive, epistemic, aleatoric, rows, uncertainty)


@dataclass(frozen=True)
class _Layout:
    """Where particles live during a rollout. Particle index k = k1 * groups + g is stored
    member-major, (g, b, p, k1) -> groups x M, so each of the `groups` leading rows is one
    ensemble member's batch (one member per group for ts1/tsinf, one group for "mean")."""

    b: int
    p: int
    h: int
    k: int
    groups: int

    @property
    def m(self) -> int:
        return self.b * self.p * self.k // self.groups

    def spread(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x O starts and B x P x H x A plans -> groups x M x O and groups x M x H x A."""
        g, b, p, h, k1 = self.groups, self.b, self.p, self.h, self.k // self.groups
        a = actions.shape[-1]
        state = obs.view(1, b, 1, 1, -1).expand(g, b, p, k1, -1).reshape(g, self.m, -1)
        plan = actions.view(1, b, p, 1, h, a).expand(g, b, p, k1, h, a).reshape(g, self.m, h, a)
        return state, plan

    def per_particle(self, x: torch.Tensor) -> torch.Tensor:
        """groups x M x ... -> B x P x K x ..."""
        rest = x.shape[2:]
        x = x.view(self.groups, self.b, self.p, self.k // self.groups, *rest).movedim(0, 3)
        return x.reshape(self.b, self.p, self.k, *rest)

    def imagination(self, total, cost, state, alive, epistemic, aleatoric, rows, uncertainty):
        """The rollout's result, moved from the particle layout to B x P (x K) per candidate."""
        per_particle = self.per_particle(total)
        return Imagination(
            returns=per_particle.mean(dim=-1),
            particle_returns=per_particle,
            epistemic=self.per_candidate(epistemic) if uncertainty else None,
            aleatoric=self.per_candidate(aleatoric) if uncertainty else None,
            model_rows=rows,
            final_state=self.per_particle(state),
            final_alive=self.per_particle(alive.expand(self.groups, self.m)),
            particle_costs=None if cost is None else self.per_particle(cost),
        )

    def per_candidate(self, values: list[torch.Tensor]) -> torch.Tensor:
        """H tensors of 1 x M -> B x P x H, averaged over each candidate's particles."""
        return torch.stack(values, -1).view(self.b, self.p, self.k // self.groups, self.h).mean(2)


@dataclass
class _Step:
    next_state: torch.Tensor  # groups x M x O
    reward: torch.Tensor | None  # groups x M (learned head) or None
    done: torch.Tensor | None  # groups x M (learned head) or None
    epistemic: torch.Tensor | None  # 1 x M: disagreement among the members' predicted means
    aleatoric: torch.Tensor | None  # 1 x M: mean predicted variance
    rows: int


def _step(model, state, action, config, generator, uncertainty: bool) -> _Step:
    """One imagined step for a groups x M x O state.

    Uncertainty comes in normalised units (divided by the target std of each state dimension,
    averaged over dimensions). In "mean" mode every member predicts every row, so the epistemic
    term is exactly the spread of member means. In ts1/tsinf the E particles of a set share their
    start and actions but each follows its own member, so the spread of their predicted means is
    the members' disagreement about where this candidate leads (exact at the first step, and
    including compounded divergence after it) at no extra compute.
    """
    scale = model.target_std[: model.obs_dim] ** 2
    if config.propagation == "mean":
        pred = model.predict(state[0], action[0])  # every member sees every row: E x M x O
        member_means = pred.next_obs_mean
        next_mean = member_means.mean(0, keepdim=True)  # 1 x M x O
        # Moment matching: total variance = mean aleatoric variance + spread of member means.
        spread = member_variance(member_means, keepdim=True)
        next_var = pred.next_obs_var.mean(0, keepdim=True) + spread
        reward = pred.reward.mean(0, keepdim=True) if pred.reward is not None else None
        logit = (
            pred.terminated_logit.mean(0, keepdim=True)
            if pred.terminated_logit is not None
            else None
        )
        rows = model.ensemble_size * state.shape[1]
        aleatoric = (pred.next_obs_var / scale).mean(dim=(0, 2)).unsqueeze(0)
    else:
        pred = model.predict(state, action)
        next_mean, next_var = pred.next_obs_mean, pred.next_obs_var
        reward, logit = pred.reward, pred.terminated_logit
        rows = state.shape[0] * state.shape[1]
        if uncertainty:
            spread = member_variance(next_mean, keepdim=True)
            aleatoric = (next_var / scale).mean(dim=(0, 2)).unsqueeze(0)
    if uncertainty:
        epistemic = normalised_std(spread, scale)  # 1 x M
    else:
        epistemic = aleatoric = None
    if config.sample and model.config.probabilistic:
        noise = torch.randn(next_mean.shape, generator=generator, device=next_mean.device)
        next_state = next_mean + next_var.sqrt() * noise
    else:
        next_state = next_mean
    done = logit > 0 if logit is not None else None
    return _Step(next_state, reward, done, epistemic, aleatoric, rows)


def _rotate_members(state, totals, generator):
    """TS1's resampling: the E particles of each set (column m of the groups x M layout share
    their start and actions) are rotated by a random offset, so each particle continues on a
    uniformly random member; its state and its running totals (return, alive flag, cost) move
    with it. One gather on the state, none on the actions or the model's outputs."""
    groups, m = totals[0].shape
    shift = torch.randint(groups, (1, m), generator=generator, device=state.device)
    index = (torch.arange(groups, device=state.device).unsqueeze(1) + shift) % groups
    state = state.gather(0, index.unsqueeze(-1).expand_as(state))
    return state, [x if x is None else x.gather(0, index) for x in totals]


def categorical(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """A discrete policy (states -> logits) as `imagine_policy`'s sampler of one-hot actions."""

    def act(state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        logits = logits_fn(state)
        flat = logits.reshape(-1, logits.shape[-1]).softmax(-1)
        draws = torch.multinomial(flat, 1, generator=generator).view(logits.shape[:-1])
        return torch.nn.functional.one_hot(draws, logits.shape[-1]).float()

    return act


@dataclass
class PolicyImagination:
    """States visited by imagined closed-loop rollouts, each with its discounted return-to-go."""

    states: torch.Tensor  # V x O: every state a rollout reached before terminating
    returns: torch.Tensor  # V: discounted reward from there on, plus the value at the horizon
    model_rows: int


@torch.no_grad()
def imagine_policy(
    model: DynamicsModel,
    starts: torch.Tensor,
    act: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    horizon: int,
    discount: float,
    reward_fn: RewardFn | None,
    termination_fn: TerminationFn | None,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator,
) -> PolicyImagination:
    """Play a policy (`act`: E x M states and a generator -> E x M actions, sampled) for
    `horizon` steps in the model from E x M start states, member e moving block e (tsinf with
    one particle per start: one batched pass per step). Rewards and terminations come from the
    task's known functions where given, else from the model's learned heads; a rollout alive
    at the horizon is worth value_fn(final state)."""
    e, m, _ = starts.shape
    state = starts
    alive = torch.ones(e, m, dtype=torch.bool, device=starts.device)
    visited, rewards, alive_at = [], [], []
    for _ in range(horizon):
        action = act(state, generator)
        prediction = model.predict(state, action)
        next_state = prediction.next_obs_mean
        if model.config.probabilistic:
            noise = torch.randn(next_state.shape, generator=generator, device=starts.device)
            next_state = next_state + prediction.next_obs_var.sqrt() * noise
        visited.append(state)
        alive_at.append(alive)
        reward = prediction.reward if reward_fn is None else reward_fn(state, action, next_state)
        if termination_fn is not None:
            alive_next = alive & ~termination_fn(next_state)
        elif prediction.terminated_logit is not None:
            alive_next = alive & ~(prediction.terminated_logit > 0)
        else:  # neither a known rule nor a learned head: episodes run on
            alive_next = alive
        rewards.append(torch.where(alive, reward, 0.0))
        alive = alive_next
        state = next_state
    onward = torch.where(alive, value_fn(state), 0.0)
    returns = []
    for t in reversed(range(horizon)):  # alive_at[t + 1] == False where step t terminated
        continues = alive_at[t + 1] if t + 1 < horizon else alive
        onward = rewards[t] + discount * torch.where(continues, onward, 0.0)
        returns.append(onward)
    keep = torch.stack(alive_at)  # H x E x M
    states = torch.stack(visited)[keep]
    return PolicyImagination(states, torch.stack(returns[::-1])[keep], horizon * e * m)
