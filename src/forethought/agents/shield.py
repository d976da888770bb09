"""A shield over any policy: before each action, imagine it and the policy's next actions with
the ensemble; where the constraint's cost would be broken, the constrained planner acts instead.
Every override is logged with its reason.

    for each batch of observations and proposed actions (the policy's own, or a learner's
    exploratory ones):
        imagine   every member rolls forward `lookahead` steps from the real state, the
                  proposed action first and the policy's actions after it, summing the
                  constraint's cost
        check     a row whose cost exceeds the limit on more than `delta` of the members is
                  unsafe
        act       the proposed action on safe rows, the constrained planner's on unsafe rows;
                  a row the planner did not act on at the previous step starts its search
                  from the policy's own imagined plan, not from the planner's stale one

The look-ahead has to reach past the point of no return: on Pendulum a fast swing towards the
forbidden zone is beyond the torque limit to stop once it passes the bottom, 4-6 steps before
it arrives, so a 5-step look-ahead overrides too late (benchmarks/safety.py measures 5 and 20).
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
        lookahead: int = 20,
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

    def state_dict(self) -> dict[str, Any]:
        """The overrides so far and the planner's warm starts and sampling stream: what a run
        checkpointed in the middle of an episode needs to shield the next step exactly."""
        return {
            "overrides": list(self.overrides),
            "decisions": self.decisions,
            "planned": sorted(self._planned),
            "planner": self.planner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.overrides, self.decisions = list(state["overrides"]), state["decisions"]
        self._planned = set(state["planned"])
        self.planner.load_state_dict(state["planner"])

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
    def predicted_costs(self, obs: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """E x B: each member's summed cost over the look-ahead, `first` (B x A) acting first."""
        e = self.model.ensemble_size
        state = obs.expand(e, *obs.shape)  # E x B x O: each member follows its own prediction
        step_action = first.expand(e, *first.shape)
        cost = torch.zeros(e, obs.shape[0], device=obs.device)
        for k in range(self.lookahead):
            if k:
                step_action = self.policy(state)
            next_state = self.model.predict(state, step_action).next_obs_mean
            cost = cost + self.constraint.cost_fn(state, step_action, next_state)
            state = next_state
        return cost

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The policy, shielded: B x O observations -> B x A actions."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32), device=self.planner.device)
        return self.filter(obs_t, self.policy(obs_t), rows)

    @torch.inference_mode()
    def filter(
        self,
        obs: torch.Tensor,
        proposed: torch.Tensor,
        rows: np.ndarray | None = None,
        note: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """The proposed B x A actions where they are safe, the constrained planner's on the rows
        where they are not; each override is logged with `note` added to its reason."""
        cost = self.predicted_costs(obs, proposed)
        violating = (cost > self.safety.plan_cost_limit).float().mean(dim=0)  # B
        unsafe = violating > self.safety.delta
        self.decisions += len(obs)
        actions = proposed.cpu().numpy().copy()
        index = np.flatnonzero(unsafe.cpu().numpy())
        ids = index if rows is None else np.asarray(rows)[index]
        if len(index):
            fresh = np.array([row not in self._planned for row in ids])
            if fresh.any():
                horizon = self.planner.planner.config.horizon
                self.planner.restart(ids[fresh], self.policy_plan(obs[index[fresh]], horizon))
            actions[index] = self.planner.act(obs[index].cpu().numpy(), ids)
            for i, row in zip(index, ids, strict=True):
                self.overrides.append(
                    {
                        "row": int(row),
                        "constraint": self.safety.constraint,
                        "predicted_cost": float(cost[:, i].mean()),
                        "probability": float(violating[i]),
                        "proposed_action": proposed[i].tolist(),
                        "planner_action": actions[i].tolist(),
                        **(note or {}),
                    }
                )
        self._planned = {int(row) for row in ids}
        return actions
