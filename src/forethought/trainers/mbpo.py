"""MBPO: Stable-Baselines3's SAC trained on short imagined rollouts branched from real states.

    every step:                 SAC acts in the real environment; the transition goes to the
                                real buffer; SAC takes `gradient_steps` updates on batches that
                                are `real_ratio` real and the rest imagined
    every `model_train_freq`:   refit the dynamics ensemble on all real data, then branch
                                `rollout_batch` rollouts of k steps (k on MBPO's linear
                                schedule) from real start states with the current policy and
                                store them in the model buffer (oldest overwritten)

SAC itself is SB3's, unmodified: the mixing happens in `MixedReplayBuffer`, passed through
SB3's public `replay_buffer_class` argument, and the rollouts in a callback. Imagined steps use
one randomly chosen ensemble member per row per step and sample from its Gaussian, as MBPO does.

With `--safety.shield`, SAC is `ShieldedSAC`: from the first refit on, each real action passes a
shield (forethought.agents.shield) built on the same ensemble and a constrained planner.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from forethought.agents.guided import PolicyPrior
from forethought.agents.mpc import MPCAgent
from forethought.agents.shield import Shield
from forethought.config import MBPOConfig, TrainConfig
from forethought.models import DynamicsModel, ModelTrainer
from forethought.planners import make_planner
from forethought.tasks import TaskSpec
from forethought.trainers.sb3_state import transitions_of
from forethought.types import TransitionBatch


class MixedReplayBuffer(ReplayBuffer):
    """SB3's replay buffer of real transitions, plus a model buffer of imagined ones; `sample`
    returns exactly round(real_ratio x batch) real rows and the rest imagined (all real until
    the first imagined data exists)."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        real_ratio: float = 0.05,
        model_capacity: int = 100_000,
    ):
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            optimize_memory_usage,
            handle_timeout_termination,
        )
        self.real_ratio = real_ratio
        self.model = ReplayBuffer(
            model_capacity,
            observation_space,
            action_space,
            device,
            n_envs=1,
            handle_timeout_termination=False,
        )
        self.last_sample_counts = (0, 0)  # (real, imagined) rows in the latest batch

    def sample(self, batch_size: int, env=None) -> ReplayBufferSamples:
        if self.model.size() == 0:
            self.last_sample_counts = (batch_size, 0)
            return super().sample(batch_size, env)
        n_real = round(self.real_ratio * batch_size)
        imagined = self.model.sample(batch_size - n_real, env)
        self.last_sample_counts = (n_real, batch_size - n_real)
        if n_real == 0:
            return imagined
        real = super().sample(n_real, env)
        return ReplayBufferSamples(
            *(None if a is None else torch.cat([a, b]) for a, b in zip(real, imagined, strict=True))
        )

    def add_imagined(
        self,
        obs: np.ndarray,
        scaled_action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Write N imagined transitions into the model buffer's ring at once."""
        buffer, n = self.model, len(obs)
        idx = (buffer.pos + np.arange(n)) % buffer.buffer_size
        buffer.observations[idx, 0] = obs
        buffer.actions[idx, 0] = scaled_action
        buffer.rewards[idx, 0] = reward
        buffer.next_observations[idx, 0] = next_obs
        buffer.dones[idx, 0] = terminated
        buffer.full = buffer.full or buffer.pos + n >= buffer.buffer_size
        buffer.pos = int((buffer.pos + n) % buffer.buffer_size)

    def real_transitions(self) -> TransitionBatch[np.ndarray]:
        """Every real transition so far (actions still in SAC's [-1, 1] scale)."""
        return transitions_of(self)


def sac_settings(config: MBPOConfig) -> dict[str, Any]:
    """SB3 SAC arguments for MBPO (SB3's defaults otherwise)."""
    return {
        "learning_starts": config.warmup_steps,
        "gradient_steps": config.gradient_steps,
        "replay_buffer_class": MixedReplayBuffer,
        "replay_buffer_kwargs": {
            "real_ratio": config.real_ratio,
            "model_capacity": config.model_buffer_capacity(),
        },
    }


class ShieldedSAC(SAC):
    """SB3's SAC whose actions in the real environment pass `shield` first once it is set (the
    rollouts set it at the first refit); the executed action is the one the replay buffer
    stores, so SAC learns from what happened."""

    shield: Shield | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "shield"]

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        if self.shield is None:
            return action, buffer_action
        device = self.shield.planner.device
        obs = torch.as_tensor(self._last_obs, dtype=torch.float32, device=device)
        proposed = torch.as_tensor(action, dtype=torch.float32, device=device)
        safe = self.shield.filter(obs, proposed, note={"env_steps": self.num_timesteps + 1})
        return safe, self.policy.scale_action(safe)


def make_shield(config: TrainConfig, sac: SAC, rollouts: BranchedRollouts, seed: int) -> Shield:
    """A shield over `sac`'s policy on the run's ensemble, with the run's planner (--planner,
    --planning.*, --rollout.*) planning under the constraint when it overrides."""
    space = sac.action_space
    planner = make_planner(config.planner, config.planning, space.low, space.high)
    fallback = MPCAgent(rollouts.dynamics, planner, rollouts.task, config.rollout,
                        device=rollouts.device, seed=seed, track_disagreement=False,
                        safety=config.safety)  # fmt: skip
    return Shield(PolicyPrior(sac).act, rollouts.dynamics, fallback, config.safety,
                  config.safety.shield_lookahead)  # fmt: skip


class BranchedRollouts(BaseCallback):
    """Every `model_train_freq` env steps: refit the ensemble, then refresh the imagined data."""

    def __init__(
        self,
        config: MBPOConfig,
        dynamics: DynamicsModel,
        trainer: ModelTrainer,
        task: TaskSpec,
        seed: int,
        device: str = "cpu",
    ):
        super().__init__()
        self.config, self.dynamics, self.trainer, self.task = config, dynamics, trainer, task
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.log: list[dict[str, Any]] = []  # one entry per refresh
        self.shield: Shield | None = None  # handed to ShieldedSAC at the first refresh

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue the refreshes exactly: the model, its
        optimiser, both random streams, the refresh log. (The imagined transitions live in the
        replay buffer, which the checkpoint stores whole.)"""
        shield = {} if self.shield is None else {"shield": self.shield.state_dict()}
        return {
            "dynamics": self.dynamics.state_dict(),
            "dynamics_optimizer": self.trainer.optimizer.state_dict(),
            "refreshes": self.log,
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            **shield,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dynamics.load_state_dict(state["dynamics"])
        self.trainer.optimizer.load_state_dict(state["dynamics_optimizer"])
        self.log = list(state["refreshes"])
        if "rng" in state:  # checkpoints before exact resume kept neither stream
            self.rng.bit_generator.state = state["rng"]
            self.generator.set_state(state["generator"])

    def _on_step(self) -> bool:
        due = self.num_timesteps % self.config.model_train_freq == 0
        if due and self.num_timesteps >= self.config.warmup_steps:
            self.refresh()
        return True

    def refresh(self) -> None:
        sac: SAC = self.model
        buffer: MixedReplayBuffer = sac.replay_buffer
        start = time.perf_counter()
        real = buffer.real_transitions()
        real = TransitionBatch(
            **{**real.__dict__, "action": sac.policy.unscale_action(real.action)}
        )
        report = self.trainer.fit(real, self.rng)
        length = self.config.rollout_length(self.num_timesteps)
        added = self.branch(sac, buffer, length)
        self.log.append(
            {
                "env_steps": self.num_timesteps,
                "holdout_error": report.holdout_error,
                "rollout_length": length,
                "imagined_added": added,
                "seconds": time.perf_counter() - start,
            }
        )
        if self.shield is not None:
            sac.shield = self.shield  # the model is fitted: from now on it can judge actions

    def branch(self, sac: SAC, buffer: MixedReplayBuffer, length: int) -> int:
        """`rollout_batch` rollouts of `length` steps from real start states; returns how many
        imagined transitions were stored."""
        starts = self.rng.integers(0, buffer.size(), size=self.config.rollout_batch)
        obs = buffer.observations[starts, 0].astype(np.float32)
        return branch(sac, buffer, self.dynamics, self.task, obs, length, self.generator)


@torch.no_grad()
def branch(
    sac: SAC,
    buffer: MixedReplayBuffer,
    dynamics: DynamicsModel,
    task: TaskSpec,
    obs: np.ndarray,
    length: int,
    generator: torch.Generator,
) -> int:
    """Rollouts of `length` steps from the N x O start states `obs`, `sac`'s policy sampling
    the actions, each step through a random member; stored in `buffer`'s model part. Returns
    how many imagined transitions were stored."""
    added = 0
    for _ in range(length):
        if len(obs) == 0:
            break
        action, _ = sac.predict(obs, deterministic=False)  # env units, clipped to bounds
        next_obs, reward, terminated = imagine_step(
            dynamics, task, obs, action.astype(np.float32), generator
        )
        buffer.add_imagined(obs, sac.policy.scale_action(action), reward, next_obs, terminated)
        added += len(obs)
        obs = next_obs[~terminated]  # a branch ends where the model says the episode ends
    return added


def imagine_step(
    dynamics: DynamicsModel,
    task: TaskSpec,
    obs: np.ndarray,
    action: np.ndarray,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for N rows, each through a randomly chosen member (sampled, not the mean)."""
    n, members, device = len(obs), dynamics.ensemble_size, generator.device
    obs_t = torch.as_tensor(obs, device=device)
    action_t = torch.as_tensor(action, device=device)
    # Shuffle the rows, then give member e every e-th slice: a random member per row at the
    # cost of one batched pass (E x ceil(N/E) rows, padded by repeating rows).
    per_member = -(-n // members)
    order = torch.randperm(n, generator=generator, device=device)
    order = torch.cat([order, order[: per_member * members - n]])
    pred = dynamics.predict(
        obs_t[order].view(members, per_member, -1),
        action_t[order].view(members, per_member, -1),
    )
    noise = torch.randn(pred.next_obs_mean.shape, generator=generator, device=device)
    sampled = pred.next_obs_mean + pred.next_obs_var.sqrt() * noise
    first = torch.empty(n, dtype=torch.long, device=device)
    first[order[:n]] = torch.arange(n, device=device)  # unpadded position of each row
    next_obs = sampled.reshape(-1, obs.shape[1])[first]
    if task.reward_fn is not None:
        reward = task.reward_fn(obs_t, action_t, next_obs)
    else:
        reward = pred.reward.reshape(-1)[first]
    if task.termination_fn is not None:
        terminated = task.termination_fn(next_obs)
    elif pred.terminated_logit is not None:
        terminated = pred.terminated_logit.reshape(-1)[first] > 0
    else:
        terminated = torch.zeros(n, dtype=torch.bool, device=device)
    return (
        next_obs.cpu().numpy(),
        reward.float().cpu().numpy(),
        terminated.cpu().numpy().astype(bool),
    )


def attach(config, env_action_space, obs_dim: int, device: str):
    """The dynamics model, its trainer and the rollout callback for an MBPO run."""
    from forethought.tasks import get_task

    task = get_task(config.env)
    # The ensemble's initial weights come from the run's seed. (This runs before SB3 seeds the
    # global torch generator, whose state at this point differs in every process: initialising
    # from it made two runs of the same command differ from the first model refresh on.)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        dynamics = DynamicsModel(
            obs_dim,
            env_action_space.shape[0],
            config.model,
            learn_reward=task.reward_fn is None,
            learn_termination=task.termination_fn is None,
        )
    dynamics = dynamics.to(device)
    trainer = ModelTrainer(dynamics, config.fit)
    return BranchedRollouts(config.mbpo, dynamics, trainer, task, config.seed, device)
