"""MOReL-style planning (Kidambi et al. 2020): MPC in the learned model, where any state the
members disagree on more than they ever do on the dataset is an absorbing HALT state.

    fit the ensemble on the dataset (once)
    threshold = the `threshold_quantile` of the members' disagreement on the dataset's own
                (state, action) pairs, in the units the rollouts report (normalised std)
    act with iCEM MPC whose imagined rollouts, once past the threshold, earn the worst reward
    seen at that step minus `halt_penalty` for every remaining step

MOReL itself trains a policy in that pessimistic MDP; here the planner optimises it directly
(the project's MPC agent, `rollout.disagreement_threshold`), so nothing is learned beyond the model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from forethought.agents.mpc import MPCAgent
from forethought.data.offline import OfflineDataset
from forethought.models import DynamicsModel
from forethought.models.uncertainty import member_variance, normalised_std
from forethought.planners import make_planner
from forethought.tasks import TaskSpec
from forethought.trainers.offline_config import OfflineConfig

CALIBRATION_BATCH = 4096


@torch.no_grad()
def dataset_disagreement(model: DynamicsModel, dataset: OfflineDataset, device: str) -> np.ndarray:
    """The members' disagreement on every logged (state, action), normalised std units."""
    data = dataset.transitions
    scale = model.target_std[: model.obs_dim] ** 2
    values = []
    for begin in range(0, len(data), CALIBRATION_BATCH):
        obs = torch.as_tensor(data.obs[begin : begin + CALIBRATION_BATCH], device=device)
        action = torch.as_tensor(data.action[begin : begin + CALIBRATION_BATCH], device=device)
        means = model.predict(obs, action).next_obs_mean  # E x B x O
        values.append(normalised_std(member_variance(means), scale).cpu().numpy())
    return np.concatenate(values)


class MOReLLearner:
    """An MPC agent over the offline model with the calibrated distrust threshold."""

    def __init__(
        self, config: OfflineConfig, dataset: OfflineDataset, model: DynamicsModel, task: TaskSpec
    ):
        disagreement = dataset_disagreement(model, dataset, config.device)
        self.threshold = float(np.quantile(disagreement, config.morel.threshold_quantile))
        rollout = replace(
            config.rollout,
            disagreement_threshold=self.threshold,
            halt_penalty=config.morel.halt_penalty,
        )
        planner = make_planner(
            "icem", config.planning, dataset.action_space.low, dataset.action_space.high
        )
        self.agent = MPCAgent(model, planner, task, rollout, device=config.device, seed=config.seed)
        self.steps = 0

    def train(self, gradient_steps: int) -> None:
        """Nothing to train beyond the model."""

    def reset(self) -> None:
        self.agent.reset()

    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self.agent.act(obs, rows)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.agent.generator.get_state(), "threshold": self.threshold}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.generator.set_state(state["generator"])

    def stats(self) -> dict[str, Any]:
        return {"halt_threshold": self.threshold}
