"""A shield over any policy: before each action, imagine the policy's action and its next few
actions with the ensemble; where the constraint's cost would be broken, the constrained planner
acts instead. Every override is logged with its reason.

    for each batch of observations:
        imagine   every member rolls the policy forward `lookahead` steps from the real state
                  (the policy's own action first), summing the constraint's cost
        check     a row whose cost exceeds the limit on more than `delta` of the members is
                  unsafe
        act       the policy's action on safe rows, the constrained planner's on unsafe rows;
                  a row the planner did not act on at the previous step starts its search
                  from the policy's own imagined plan, not from the planner's stale one
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from forethought.agents.mpc import MPCAgent
from forethought.models.dynamics import DynamicsModel
from forethought.tasks.constraints import CONSTRAINTS, SafetyConfig

TorchPolicy = Callable[[torch.Tensor], torch.Tensor]  # ... x O observations -> ... x A actions


class Shield:
    def __init__(
        self,
        policy: TorchPolicy,
        model: DynamicsModel,
        planner: MPCAgent,
        safety: SafetyConfig,
        lookahead: int = 5,
    ):
        if safety.constraint is None:
            raise ValueError("a shield needs a constraint (SafetyConfig.constraint)")
        self.policy, self.model, self.planner, self.safety = policy, model, planner, safety
        self.constraint = CONSTRAINTS[safety.constraint]
        self.lookahead = lookahead
        self.overrides: list[dict[str, Any]] = []  # one entry per overridden row and step
        self.decisions = 0  # rows acted for
        self._planned: set[int] = set()  # row ids the planner acted on at the previous step

    def reset(self) -> None:
        self.planner.reset()
        self._planned = set()

    @torch.inference_mode()
    def policy_plan(self, obs: torch.Tensor, horizon: int) -> torch.Tensor:
        """B x H x A: the policy's actions along the ensemble's mean prediction from `obs`."""
        e, plan, state = self.model.ensemble_size, [], obs
        for _ in range(horizon):
            action = self.policy(state)
            plan.append(action)
            members = self.model.predict(
                state.expand(e, *state.shape), action.expand(e, *action.shape)
            )
            state = members.next_obs_mean.mean(dim=0)
        return torch.stack(plan, dim=1)

    @torch.inference_mode()
    def predicted_costs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the policy's actions B x A, each member's summed cost E x B) over the lookahead."""
        e = self.model.ensemble_size
        action = self.policy(obs)  # B x A
        state = obs.expand(e, *obs.shape)  # E x B x O: each member follows its own prediction
        step_action = action.expand(e, *action.shape)
        cost = torch.zeros(e, obs.shape[0], device=obs.device)
        for k in range(self.lookahead):
            if k:
                step_action = self.policy(state)
            next_state = self.model.predict(state, step_action).next_obs_mean
            cost = cost + self.constraint.cost_fn(state, step_action, next_state)
            state = next_state
        return action, cost

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, np.float32), device=self.planner.device)
        action, cost = self.predicted_costs(obs_t)
        violating = (cost > self.safety.plan_cost_limit).float().mean(dim=0)  # B
        unsafe = violating > self.safety.delta
        self.decisions += len(obs_t)
        actions = action.cpu().numpy()
        index = np.flatnonzero(unsafe.cpu().numpy())
        ids = index if rows is None else np.asarray(rows)[index]
        if len(index):
            fresh = np.array([row not in self._planned for row in ids])
            if fresh.any():
                horizon = self.planner.planner.config.horizon
                plans = self.policy_plan(obs_t[index[fresh]], horizon)
                self.planner.restart(ids[fresh], plans)
            actions[index] = self.planner.act(obs_t[index].cpu().numpy(), ids)
            for i in index:
                self.overrides.append(
                    {
                        "row": int(i if rows is None else rows[i]),
                        "constraint": self.safety.constraint,
                        "predicted_cost": float(cost[:, i].mean()),
                        "probability": float(violating[i]),
                        "policy_action": action[i].tolist(),
                        "planner_action": actions[i].tolist(),
                    }
                )
        self._planned = {int(row) for row in ids}
        return actions
