"""The model-predictive control agent: at every step, plan H steps ahead in the learned model,
execute the first action, then plan again from the next real state (receding horizon)."""

from __future__ import annotations

import numpy as np
import torch

from forethought.models.dynamics import DynamicsModel
from forethought.planners.base import Planner, shift_plan
from forethought.rollout import ComputeCounter, RolloutConfig, imagine
from forethought.tasks.base import TaskSpec


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

    def reset(self) -> None:
        """Forget warm starts; call at the start of every episode."""
        self._plans = self._elites = None

    def objective(self, obs: torch.Tensor):
        """Expected imagined return of each candidate sequence from the B x O states `obs`."""

        def expected_return(candidates: torch.Tensor) -> torch.Tensor:  # B x P x H x A -> B x P
            result = imagine(
                self.model,
                obs,
                candidates,
                self.rollout,
                self.task.reward_fn,
                self.task.termination_fn,
                self.generator,
                uncertainty=False,  # only the executed plan's disagreement is logged
            )
            self.compute.model_rows += result.model_rows
            scores = result.scores(self.rollout)
            value = self.terminal_value(result)
            return scores if value is None else scores + value

        return expected_return

    # Hooks for policy-guided planning (forethought.agents.guided); plain MPC has neither.
    def propose(self, obs: torch.Tensor) -> torch.Tensor | None:
        """Extra candidate sequences (B x S x H x A) for the planner to consider."""
        return None

    def terminal_value(self, imagined) -> torch.Tensor | None:
        """A B x P estimate of the return after the horizon, added to each candidate's score."""
        return None

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
        result = self.planner.plan(
            self.objective(obs_t),
            batch=batch,
            initial=initial,
            elites=elites,
            generator=self.generator,
            proposals=self.propose(obs_t),
        )
        if self.track_disagreement:
            # How far into the unknown does the chosen plan go? One extra rollout of the executed
            # sequence (1 candidate per problem) measures the members' disagreement along it.
            chosen = imagine(
                self.model,
                obs_t,
                result.actions.unsqueeze(1),
                self.rollout,
                self.task.reward_fn,
                self.task.termination_fn,
                self.generator,
            )
            self.compute.model_rows += chosen.model_rows
            self.plan_disagreement.append(float(chosen.epistemic.mean()))
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
        return result.actions[:, 0].cpu().numpy()


def _grown(slots: torch.Tensor | None, rows: int, fill: torch.Tensor) -> torch.Tensor:
    """`slots` with at least `rows` leading entries, new ones set to `fill`."""
    have = 0 if slots is None else slots.shape[0]
    if have >= rows:
        return slots
    extra = fill.expand(rows - have, *fill.shape).clone()
    return extra if slots is None else torch.cat([slots, extra])
