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
    ):
        rollout.validate(model.ensemble_size)
        self.model, self.planner, self.task, self.rollout = model, planner.to(device), task, rollout
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.compute = ComputeCounter()
        self._plans: torch.Tensor | None = None  # B x H x A, shifted last plans (warm start)
        self._elites: torch.Tensor | None = None  # B x K x H x A, shifted elites (iCEM)
        self.plan_disagreement: list[float] = []  # per act() call: mean epistemic along the plan

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
            self.compute.objective_rows += candidates.shape[0] * candidates.shape[1]
            return result.scores(self.rollout)

        return expected_return

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Plan for B x O observations and return B x A actions.

        `rows` says which of the batch's warm starts these observations continue (a subset when
        some parallel episodes have ended); by default all of them, in order.
        """
        obs_t = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        batch = obs_t.shape[0]
        index = torch.arange(batch) if rows is None else torch.as_tensor(rows)
        initial = self._plans[index] if self._plans is not None else None
        elites = self._elites[index] if self._elites is not None else None
        result = self.planner.plan(
            self.objective(obs_t),
            batch=batch,
            initial=initial,
            elites=elites,
            generator=self.generator,
        )
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
        full = self._plans.shape[0] if self._plans is not None else batch
        center = self.planner.center
        shifted = shift_plan(result.actions, center)
        if self._plans is None:
            self._plans = center.expand(full, *shifted.shape[1:]).clone()
        self._plans[index] = shifted
        if result.elites is not None:
            k = result.elites.shape[1]
            shifted_elites = shift_plan(result.elites.flatten(0, 1), center).view_as(result.elites)
            if self._elites is None or self._elites.shape[1] != k:
                self._elites = center.expand(full, k, *shifted.shape[1:]).clone()
            self._elites[index] = shifted_elites
        return result.actions[:, 0].cpu().numpy()
