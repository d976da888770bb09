"""MOPO (Yu et al. 2020): SAC on short imagined branches from logged states, each imagined
reward lowered by how unsure the model is there.

    fit the ensemble on the dataset (once)
    every `rollout_every` SAC updates:
        start `rollout_batch` branches at random dataset states; for `rollout_length` steps the
        policy acts, a random member predicts (sampled), and the stored reward is
            r - penalty x u(s, a)
        u: the members' disagreement about the next state (default), or MOPO's paper's largest
        predicted standard deviation among the members (`uncertainty="aleatoric"`)
    SAC updates on batches that are `real_ratio` dataset rows and the rest imagined

SAC is SB3's, through `ActorCritic` (public `train`, seeded streams); the mixing is
`MixedReplayBuffer`, as in online MBPO. The environment is never touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from forethought.data.offline import OfflineDataset
from forethought.models import DynamicsModel
from forethought.rollout import TerminationFn
from forethought.trainers.actor_critic import ActorCritic
from forethought.trainers.mbpo import MixedReplayBuffer
from forethought.trainers.offline_config import MOPOConfig


class MOPOLearner:
    """SAC, its mixed replay buffer (dataset + penalised imagined rows) and the branch maker."""

    def __init__(
        self,
        config: MOPOConfig,
        dataset: OfflineDataset,
        dynamics: DynamicsModel,
        termination_fn: TerminationFn | None,
        seed: int,
        device: str = "cpu",
    ):
        self.config, self.dynamics, self.termination_fn = config, dynamics, termination_fn
        self.device = device
        n = len(dataset.transitions)
        self.actor_critic = ActorCritic(
            config,
            dataset.observation_space,
            dataset.action_space,
            capacity=n,
            seed=seed,
            device=device,
            replay_buffer_class=MixedReplayBuffer,
            replay_buffer_kwargs={
                "real_ratio": config.real_ratio,
                "model_capacity": config.model_capacity(),
            },
        )
        self.sac = self.actor_critic.sac
        _fill_real(self.sac.replay_buffer, dataset, self.sac.policy.scale_action)
        self.start_states = dataset.transitions.obs
        self.rng = np.random.default_rng([seed, 3])
        self.generator = torch.Generator(device).manual_seed(seed)
        self.steps = 0  # SAC updates so far
        self.refreshes: list[dict[str, float]] = []

    def train(self, gradient_steps: int) -> None:
        """`gradient_steps` SAC updates, refreshing the imagined data on schedule."""
        left = gradient_steps
        while left > 0:
            if self.steps % self.config.rollout_every == 0:
                self.refresh()
            chunk = min(left, self.config.rollout_every - self.steps % self.config.rollout_every)
            self.actor_critic.train(chunk)
            self.steps += chunk
            left -= chunk

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.sac.predict(obs, deterministic=True)
        return action.astype(np.float32)

    @torch.no_grad()
    def refresh(self) -> None:
        """Branch `rollout_batch` penalised rollouts into the model buffer."""
        buffer: MixedReplayBuffer = self.sac.replay_buffer
        starts = self.rng.integers(0, len(self.start_states), size=self.config.rollout_batch)
        obs = self.start_states[starts]
        rewards, penalties, added = [], [], 0
        seed = int(self.rng.integers(2**32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # SB3 samples the policy's actions from the global stream
            for _ in range(self.config.rollout_length):
                if len(obs) == 0:
                    break
                action, _ = self.sac.predict(obs, deterministic=False)
                next_obs, reward, penalty, terminated = self.imagine(obs, action.astype(np.float32))
                stored = reward - self.config.penalty * penalty
                buffer.add_imagined(
                    obs, self.sac.policy.scale_action(action), stored, next_obs, terminated
                )
                rewards.append(reward)
                penalties.append(penalty)
                added += len(obs)
                obs = next_obs[~terminated]
        self.refreshes.append(
            {
                "gradient_steps": self.steps,
                "imagined_added": added,
                "imagined_reward": float(np.concatenate(rewards).mean()),
                "penalty": float(np.concatenate(penalties).mean()),
            }
        )

    def imagine(self, obs: np.ndarray, action: np.ndarray):
        """One step for N rows: every member predicts every row (for the penalty), a random
        member's sample is the next state."""
        obs_t = torch.as_tensor(obs, device=self.device)
        action_t = torch.as_tensor(action, device=self.device)
        pred = self.dynamics.predict(obs_t, action_t)  # E x N x ...
        n = len(obs)
        member = torch.randint(
            self.dynamics.ensemble_size, (n,), generator=self.generator, device=self.device
        )
        rows = torch.arange(n, device=self.device)
        mean, var = pred.next_obs_mean[member, rows], pred.next_obs_var[member, rows]
        noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
        next_obs = mean + var.sqrt() * noise
        reward = pred.reward[member, rows]
        if self.config.uncertainty == "aleatoric" and self.dynamics.config.probabilistic:
            penalty = pred.next_obs_var.sqrt().norm(dim=-1).max(dim=0).values
        else:  # the members' disagreement, per dimension in units of the data's spread
            scale = self.dynamics.target_std[: self.dynamics.obs_dim]
            penalty = (pred.next_obs_mean.std(dim=0, unbiased=False) / scale).norm(dim=-1)
        if self.termination_fn is not None:
            terminated = self.termination_fn(next_obs)
        elif pred.terminated_logit is not None:
            terminated = pred.terminated_logit[member, rows] > 0
        else:
            terminated = torch.zeros(n, dtype=torch.bool, device=self.device)
        return (
            next_obs.cpu().numpy(),
            reward.float().cpu().numpy(),
            penalty.float().cpu().numpy(),
            terminated.cpu().numpy().astype(bool),
        )

    def state_dict(self) -> dict[str, Any]:
        model = self.sac.replay_buffer.model
        return {
            "actor_critic": self.actor_critic.state_dict(),
            "imagined": {
                name: getattr(model, name).copy()
                for name in ("observations", "actions", "rewards", "next_observations", "dones")
            },
            "imagined_pos": (model.pos, model.full),
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "steps": self.steps,
            "refreshes": self.refreshes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor_critic.load_state_dict(state["actor_critic"])
        model = self.sac.replay_buffer.model
        for name, values in state["imagined"].items():
            getattr(model, name)[...] = values
        model.pos, model.full = state["imagined_pos"]
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        self.steps = state["steps"]
        self.refreshes = list(state["refreshes"])

    def stats(self) -> dict[str, Any]:
        latest = self.refreshes[-1] if self.refreshes else {}
        return {
            **self.actor_critic.stats(),
            "imagined_transitions": sum(r["imagined_added"] for r in self.refreshes),
            "imagined_reward": latest.get("imagined_reward"),
            "penalty": latest.get("penalty"),
        }


def _fill_real(buffer: MixedReplayBuffer, dataset: OfflineDataset, scale_action) -> None:
    """Write the whole dataset into SAC's real buffer at once (actions in SAC's [-1, 1])."""
    data = dataset.transitions
    n = len(data)
    buffer.observations[:n, 0] = data.obs
    buffer.next_observations[:n, 0] = data.next_obs
    buffer.actions[:n, 0] = scale_action(data.action)
    buffer.rewards[:n, 0] = data.reward
    # SB3 bootstraps through a time-limit cut (timeout) but not through a true termination.
    buffer.dones[:n, 0] = data.terminated | data.truncated
    buffer.timeouts[:n, 0] = data.truncated & ~data.terminated
    buffer.pos, buffer.full = 0, True
