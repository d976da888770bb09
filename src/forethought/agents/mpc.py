"""The model-predictive control agent: at every step, plan H steps ahead in the learned model,
execute the first action, then plan again from the next real state (receding horizon).

With a constraint (`SafetyConfig`), planning is chance-constrained: a candidate whose imagined
cost exceeds the plan's cost limit on more than a fraction `delta` of its particles (members
and samples) is vetoed, ranking below every feasible candidate (least expected cost first), so
the elites are feasible whenever any candidate is. When the executed plan is itself vetoed, the
configured fallback acts and the step is counted in `vetoed_steps`."""

from __future__ import annotations

import numpy as np
import torch

from forethought.models.dynamics import DynamicsModel
from forethought.models.value import StateValue
from forethought.planners.base import Planner, shift_plan
from forethought.rollout import ComputeCounter, RolloutConfig, imagine
from forethought.tasks.base import TaskSpec
from forethought.tasks.constraints import CONSTRAINTS, SafetyConfig


class MPCAgent:
    """Model + planner + objective. `act` takes a batch of observations (B x O) so several
    environments (e.g. evaluation episodes) can be planned for in one pass."""

    def __init__(
        self,
        model: DynamicsModel,
        planner: Planner,
        task: TaskSpec,
        rollout: RolloutConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        track_disagreement: bool = True,
        safety: SafetyConfig | None = None,
        state_value: StateValue | None = None,
    ):
        rollout.validate(model.ensemble_size)
        self.model, self.planner, self.task, self.rollout = model, planner.to(device), task, rollout
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.compute = ComputeCounter()
        self._plans: torch.Tensor | None = None  # B x H x A, shifted last plans (warm start)
        self._elites: torch.Tensor | None = None  # B x K x H x A, shifted elites (iCEM)
        self.plan_disagreement: list[float] = []  # per act() call: mean epistemic along the plan
        self.track_disagreement = track_disagreement  # costs one extra rollout per act()
        planning_safely = safety is not None and safety.constraint is not None and safety.veto
        self.safety = safety if planning_safely else None
        self.cost_fn = CONSTRAINTS[self.safety.constraint].cost_fn if self.safety else None
        self.vetoed_steps = 0  # acts whose chosen plan was itself vetoed (the fallback acted)
        self.plan_cost: list[float] = []  # per act() call: expected imagined cost of the plan
        # What lies past the plan's end (--value.at-horizon): the learned state value, which the
        # trainer fits; subclasses may bootstrap from another estimate, at their own discount.
        self.state_value = state_value
        self.horizon_value = state_value
        self.value_discount = rollout.discount
        self.untrusted_rollout = rollout  # how plans are scored while a gated V is left out
        self.pessimistic_value = False  # needs one member per particle (not "mean" propagation)

    def reset(self) -> None:
        """Forget warm starts; call at the start of every episode."""
        self._plans = self._elites = None

    def state_dict(self) -> dict:
        """Warm starts, the sampling stream and the veto count: what a run checkpointed in the
        middle of an episode needs to plan its next step as the uninterrupted run would."""
        return {
            "plans": self._plans,
            "elites": self._elites,
            "generator": self.generator.get_state(),
            "vetoed_steps": self.vetoed_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self._plans, self._elites = state["plans"], state["elites"]
        self.generator.set_state(state["generator"])
        self.vetoed_steps = state["vetoed_steps"]

    def restart(self, rows: np.ndarray, plans: torch.Tensor | None = None) -> None:
        """Start these row ids' next plans from `plans` (B x H x A; default the planner's centre)
        with no elites kept: for a caller that hands the planner a row only now and then (a
        shield's fallback), where the row's last plan belongs to a state long gone."""
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        center = self.planner.center
        if plans is None:
            plans = center.expand(len(index), self.planner.config.horizon, *center.shape)
        needed = int(index.max()) + 1
        self._plans = _grown(self._plans, needed, center.expand(*plans.shape[1:]))
        self._plans[index] = plans.to(self._plans.device, self._plans.dtype)
        if self._elites is not None:
            self._elites = _grown(self._elites, needed, center.expand(self._elites.shape[1:]))
            self._elites[index] = center

    def objective(self, obs: torch.Tensor):
        """Expected imagined return of each candidate sequence from the B x O states `obs`."""

        rollout = self.scoring_rollout()

        def expected_return(candidates: torch.Tensor) -> torch.Tensor:  # B x P x H x A -> B x P
            result = imagine(
                self.model,
                obs,
                candidates,
                rollout,
                self.task.reward_fn,
                self.task.termination_fn,
                self.generator,
                uncertainty=False,  # only the executed plan's disagreement is logged
                cost_fn=self.cost_fn,
            )
            self.compute.model_rows += result.model_rows
            scores = result.scores(rollout)
            value = self.terminal_value(result)
            scores = scores if value is None else scores + value
            return scores if self.cost_fn is None else self._veto(scores, result.particle_costs)

        return expected_return

    def _infeasible(self, costs: torch.Tensor) -> torch.Tensor:
        """B x P x K particle costs -> B x P: more than `delta` of the particles over the limit."""
        over = (costs > self.safety.plan_cost_limit).float().mean(dim=-1)
        return over > self.safety.delta

    def _veto(self, scores: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
        """Vetoed candidates rank below every other candidate of their problem, those with the
        least expected cost first (chance-constrained elite selection)."""
        floor = scores.min(dim=1, keepdim=True).values - 1.0  # B x 1
        return torch.where(self._infeasible(costs), floor - costs.mean(dim=-1), scores)

    # Hooks for policy-guided planning (forethought.agents.guided); plain MPC has neither.
    def propose(self, obs: torch.Tensor) -> torch.Tensor | None:
        """Extra candidate sequences (B x S x H x A) for the planner to consider."""
        return None

    def warm_start(self, initial: torch.Tensor | None, proposals: torch.Tensor | None):
        """Where the search starts (B x H x A, or None for the action box's centre): by
        default the last plan shifted by one step."""
        return initial

    def values_horizon(self) -> bool:
        """Whether plans are scored with a value at their end now: a state value under
        --value.trust is left out until it has predicted the real transitions."""
        return self.horizon_value is not None and bool(getattr(self.horizon_value, "trusted", True))

    def scoring_rollout(self) -> RolloutConfig:
        """The rollout (and discount) plans are scored with: while a gated value (--value.trust,
        --value.trial-steps) is left out, `untrusted_rollout` (for --algo loop, plain MPC's)."""
        left_out = self.horizon_value is not None and not self.values_horizon()
        return self.untrusted_rollout if left_out else self.rollout

    def terminal_value(self, imagined) -> torch.Tensor | None:
        """A B x P estimate of the return after the horizon, added to each candidate's score:
        discount^H x V(s_H) per particle, zero where the imagined episode ended, averaged over
        the particles, or (pessimistic) averaged per ensemble member, then the worst member.
        Particle k follows member k mod E (see rollout._Layout)."""
        if not self.values_horizon():
            return None
        value = self.horizon_value(imagined.final_state) * imagined.final_alive  # B x P x K
        if self.pessimistic_value:
            b, p, k = value.shape
            members = self.model.ensemble_size
            value = value.view(b, p, k // members, members).mean(dim=2).min(dim=-1).values
        else:
            value = value.mean(dim=-1)
        return self.value_discount**self.planner.config.horizon * value

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Plan for B x O observations and return B x A actions.

        `rows` says which of the batch's warm starts these observations continue (a subset when
        some parallel episodes have ended); by default all of them, in order.
        """
        obs_t = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        batch = obs_t.shape[0]
        index = torch.arange(batch) if rows is None else torch.as_tensor(rows)
        rows_needed = int(index.max()) + 1
        center = self.planner.center
        if self._plans is not None:  # a row id seen for the first time starts from the centre
            self._plans = _grown(self._plans, rows_needed, center.expand(self._plans.shape[1:]))
        if self._elites is not None:
            self._elites = _grown(self._elites, rows_needed, center.expand(self._elites.shape[1:]))
        initial = self._plans[index] if self._plans is not None else None
        elites = self._elites[index] if self._elites is not None else None
        proposals = self.propose(obs_t)
        result = self.planner.plan(
            self.objective(obs_t),
            batch=batch,
            initial=self.warm_start(initial, proposals),
            elites=elites,
            generator=self.generator,
            proposals=proposals,
        )
        actions = result.actions[:, 0]
        if self.track_disagreement or self.safety is not None:
            # How far into the unknown does the chosen plan go, and would it break the
            # constraint? One extra rollout of the executed sequence (1 candidate per problem).
            chosen = imagine(
                self.model,
                obs_t,
                result.actions.unsqueeze(1),
                self.rollout,
                self.task.reward_fn,
                self.task.termination_fn,
                self.generator,
                cost_fn=self.cost_fn,
            )
            self.compute.model_rows += chosen.model_rows
            self.plan_disagreement.append(float(chosen.epistemic.mean()))
            if self.safety is not None:
                actions = self._fallback(actions, chosen.particle_costs)
        # Warm starts are kept per row id; a row id not seen before gets a fresh slot.
        full = max(rows_needed, 0 if self._plans is None else self._plans.shape[0])
        shifted = shift_plan(result.actions, center)
        self._plans = _grown(self._plans, full, center.expand(*shifted.shape[1:]))
        self._plans[index] = shifted
        if result.elites is not None:
            k = result.elites.shape[1]
            shifted_elites = shift_plan(result.elites.flatten(0, 1), center).view_as(result.elites)
            if self._elites is not None and self._elites.shape[1] != k:
                self._elites = None
            self._elites = _grown(self._elites, full, center.expand(k, *shifted.shape[1:]))
            self._elites[index] = shifted_elites
        return actions.cpu().numpy()

    def _fallback(self, actions: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
        """Where even the chosen plan is vetoed (every candidate was), the fallback acts:
        the least-violating plan as chosen, or a zero action clipped to the bounds."""
        vetoed = self._infeasible(costs)[:, 0]  # B
        self.vetoed_steps += int(vetoed.sum())
        self.plan_cost.append(float(costs.mean()))
        if self.safety.fallback == "zero" and vetoed.any():
            zero = torch.zeros_like(actions[0]).clamp(self.planner.lower, self.planner.upper)
            actions = torch.where(vetoed.unsqueeze(-1), zero, actions)
        return actions


def _grown(slots: torch.Tensor | None, rows: int, fill: torch.Tensor) -> torch.Tensor:
    """`slots` with at least `rows` leading entries, new ones set to `fill`."""
    have = 0 if slots is None else slots.shape[0]
    if have >= rows:
        return slots
    extra = fill.expand(rows - have, *fill.shape).clone()
    return extra if slots is None else torch.cat([slots, extra])
