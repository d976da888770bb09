"""The tree-search agent for discrete actions: at every step, grow a search tree in the learned
model from the current real state (planners/mcts.py), play the root action it prefers, and
search again from the next state.

The ensemble is the tree's simulator. Each expansion asks every member about the new edge (one
batched pass, which also gives the members' disagreement) and follows one member drawn at
random per simulation, so the tree sees the spread of the members rather than their average.
A new node is worth the mean discounted return of random rollouts from it, one per member,
each staying with its own member, plus the learned state value (models/value.py) where the
rollouts stop: the search looks a few steps ahead, the value function beyond.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from forethought.models.dynamics import DynamicsModel
from forethought.models.uncertainty import member_variance, normalised_std
from forethought.models.value import StateValue
from forethought.planners.mcts import TreeSearchConfig, search
from forethought.rollout import ComputeCounter
from forethought.tasks.base import TaskSpec


class ModelSimulator:
    """A DynamicsModel and the task's known functions behind the tree's `step`/`value`."""

    def __init__(
        self,
        model: DynamicsModel,
        task: TaskSpec,
        config: TreeSearchConfig,
        generator: torch.Generator,
        compute: ComputeCounter,
        state_value: StateValue | None = None,
    ):
        self.model, self.task, self.config = model, task, config
        self.state_value = state_value
        self.generator, self.compute = generator, compute
        self.num_actions = model.action_dim
        self.scale = model.target_std[: model.obs_dim] ** 2
        self.disagreement: list[torch.Tensor] = []  # per expansion in the current search

    def _one_hot(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(actions, self.num_actions).float()

    def _predict(self, states: torch.Tensor, actions: torch.Tensor, members: torch.Tensor):
        """One imagined step of E x N (or N, shared by every member) states; row n continues
        on member members[n]. Returns next states (N x O), rewards, done, disagreement."""
        one_hot = self._one_hot(actions)
        prediction = self.model.predict(states, one_hot)  # E x N x O
        n = prediction.next_obs_mean.shape[1]
        self.compute.model_rows += prediction.next_obs_mean.shape[0] * n
        self.compute.model_calls += 1
        rows = torch.arange(n, device=states.device)
        mean = prediction.next_obs_mean[members, rows]
        next_state = mean
        if self.config.sample and self.model.config.probabilistic:
            std = prediction.next_obs_var[members, rows].sqrt()
            next_state = mean + std * torch.randn(
                mean.shape, generator=self.generator, device=mean.device
            )
        start = states if states.dim() == 2 else states[members, rows]
        reward, done = self._outcome(start, one_hot, next_state, prediction, (members, rows))
        spread = normalised_std(member_variance(prediction.next_obs_mean), self.scale)
        return next_state, reward, done, spread

    def _outcome(self, state, action, next_state, prediction, rows):
        """Reward and termination of the steps: the task's known functions where it has them,
        else the learned heads' predictions at `rows` of the per-member outputs."""
        if self.task.reward_fn is not None:
            reward = self.task.reward_fn(state, action, next_state)
        else:
            reward = prediction.reward[rows]
        if self.task.termination_fn is not None:
            done = self.task.termination_fn(next_state)
        else:
            done = prediction.terminated_logit[rows] > 0
        return reward, done

    def step(self, states: torch.Tensor, actions: torch.Tensor):
        members = torch.randint(
            self.model.ensemble_size,
            (states.shape[0],),
            generator=self.generator,
            device=states.device,
        )
        next_state, reward, done, spread = self._predict(states, actions, members)
        self.disagreement.append(spread)
        return next_state, reward - self.config.uncertainty_penalty * spread, done

    def value(self, states: torch.Tensor) -> torch.Tensor:
        """Mean discounted return of `rollout_steps` uniformly random actions, one rollout per
        member (E x N rows per step, each member moving its own copy of the N states), plus
        the learned value of where each rollout ends, discounted, if it is still alive."""
        cfg, e, n = self.config, self.model.ensemble_size, states.shape[0]
        if cfg.rollout_steps == 0:
            if self.state_value is None:
                return torch.zeros(n, device=states.device)
            return self.state_value(states)
        state = states.expand(e, n, -1)
        total = torch.zeros(e * n, device=states.device)
        alive = torch.ones(e * n, dtype=torch.bool, device=states.device)
        for t in range(cfg.rollout_steps):
            actions = torch.randint(
                self.num_actions, (e, n), generator=self.generator, device=states.device
            )
            next_state, reward, done = self._predict_members(state, actions)
            total += torch.where(alive, cfg.discount**t * reward, 0.0)
            alive &= ~done
            state = next_state
        if self.state_value is not None:
            beyond = self.state_value(state.reshape(e * n, self.model.obs_dim))
            total += torch.where(alive, cfg.discount**cfg.rollout_steps * beyond, 0.0)
        return total.view(e, n).mean(dim=0)

    def _predict_members(self, state: torch.Tensor, actions: torch.Tensor):
        """E x N states and actions, member e moving its own row block, one step: next states
        (E x N x O), rewards and done flags (E*N). Each member follows its own trajectory, so
        no row has several predictions to disagree on: the uncertainty penalty applies to
        the tree's edges only."""
        e, n = actions.shape
        one_hot = self._one_hot(actions)
        prediction = self.model.predict(state, one_hot)
        self.compute.model_rows += e * n
        self.compute.model_calls += 1
        mean = prediction.next_obs_mean
        next_state = mean
        if self.config.sample and self.model.config.probabilistic:
            noise = torch.randn(mean.shape, generator=self.generator, device=mean.device)
            next_state = mean + prediction.next_obs_var.sqrt() * noise
        reward, done = self._outcome(state, one_hot, next_state, prediction, ...)
        return next_state, reward.reshape(-1), done.reshape(-1)


class TreeSearchAgent:
    """MCTS in the learned model. `act` takes B x O observations and returns B x n one-hot
    actions, planning for all B in one batched search (like `MPCAgent.act`)."""

    def __init__(
        self,
        model: DynamicsModel,
        task: TaskSpec,
        config: TreeSearchConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        state_value: StateValue | None = None,
    ):
        self.model, self.task, self.config = model, task, config
        self.state_value = state_value
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.compute = ComputeCounter()
        self.simulator = ModelSimulator(
            model, task, config, self.generator, self.compute, state_value
        )
        self.plan_disagreement: list[float] = []  # per act(): mean disagreement of the tree's edges
        self.plan_cost: list[float] = []  # constraints are not supported by tree search (yet)
        self.vetoed_steps = 0
        self.last_search = None  # the SearchResult of the latest act(), for explanations

    def reset(self) -> None:
        """Nothing carries over between steps: every search starts from a fresh tree."""

    def set_discount(self, discount: float) -> None:
        """Search with another discount from the next action on (--mcts.adaptive-horizon)."""
        self.config = dataclasses.replace(self.config, discount=discount)
        self.simulator.config = self.config

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        states = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        self.simulator.disagreement.clear()
        result = search(self.simulator, states, self.model.action_dim, self.config, self.generator)
        self.last_search = result
        if self.simulator.disagreement:
            self.plan_disagreement.append(float(torch.cat(self.simulator.disagreement).mean()))
        one_hot = torch.nn.functional.one_hot(result.action, self.model.action_dim)
        return one_hot.float().cpu().numpy()
