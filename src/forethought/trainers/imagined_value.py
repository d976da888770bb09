"""Value targets from imagination (--value.imagined-horizon): where a policy's habits lead.

A state value fitted on the planner's own episodes learns the cost of a slow habit (a cart
drifting towards the end of its track) only from the few real episodes that ended that way,
and a tree a few steps deep cannot see it coming. Imagination shows it sooner: play a policy
(tree search: the planner's logged choices distilled; --algo loop: SAC's actor) far past the
planner's reach in the learned model from logged states, and fit V on those rollouts' returns
alongside its TD(lambda) targets. The states they pass through are also where a shooting
planner's plans end, and where a value fitted on the logs alone is a guess.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from forethought.models.dynamics import DynamicsModel
from forethought.models.policy import DistilledPolicy
from forethought.models.value import StateValue
from forethought.rollout import categorical, imagine_policy
from forethought.tasks.base import TaskSpec
from forethought.types import TransitionBatch

MAX_STARTS = 1024  # rollouts per fit: logged start states drawn at random


def imagined_returns(
    model: DynamicsModel,
    task: TaskSpec,
    value: StateValue,
    data: TransitionBatch[np.ndarray],
    horizon: int,
    discount: float,
    rng: np.random.Generator,
    act: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As many (imagined state, discounted return-to-go) pairs as `data` has transitions, from
    rollouts of `act` (states, generator -> sampled actions); by default of a policy distilled
    from the logged discrete actions."""
    device = value.obs_mean.device
    obs = torch.as_tensor(data.obs, dtype=torch.float32, device=device)
    if act is None:
        actions = torch.as_tensor(np.asarray(data.action).argmax(-1), device=device)
        policy = DistilledPolicy(model.obs_dim, model.action_dim).to(device)
        policy.fit(obs, actions, seed=int(rng.integers(2**62)))
        act = categorical(policy)
    e = model.ensemble_size
    count = min(len(obs), MAX_STARTS) // e * e
    if count == 0:
        return obs[:0], obs.new_zeros(0)
    starts = obs[torch.as_tensor(rng.choice(len(obs), count, replace=False), device=device)]
    generator = torch.Generator(device).manual_seed(int(rng.integers(2**62)))
    with torch.no_grad():
        rollouts = imagine_policy(
            model, starts.view(e, count // e, -1), act, horizon, discount,
            task.reward_fn, task.termination_fn, value, generator,
        )  # fmt: skip
    keep = rng.choice(len(rollouts.states), min(len(obs), len(rollouts.states)), replace=False)
    keep = torch.as_tensor(keep, device=device)
    return rollouts.states[keep], rollouts.returns[keep]
