"""The actor-critic that learns while the planner acts (`--algo loop`, after LOOP, Sikchi et al.
2021, and TD-MPC's terminal value).

Stable-Baselines3's SAC, unmodified, learns off-policy from the real transitions the planner
collects: every transition goes into SAC's own replay buffer, and every `train_freq` environment
steps SAC takes `train_freq x gradient_steps` updates through its public `train` method. SAC
never acts and never sees an environment (it is built on a stand-in that only carries the
spaces). Its critic gives the planner the value beyond the horizon and its actor proposes
candidate plans (`agents.guided.GuidedMPCAgent`). With `--loop.imagined-ratio` its batches also
draw from short rollouts of the actor in the model, branched from real states after every fit
(MBPO's data, `trainers.mbpo.branch`), so that it may take more updates per real step.

The updates draw from numpy's and torch's global random streams (SB3 samples batches and actions
there); each batch of updates runs on streams seeded from this learner's own generator, which
is checkpointed, so a resumed run repeats the updates of an uninterrupted one exactly.
"""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from forethought.config import LoopConfig
from forethought.models import DynamicsModel
from forethought.tasks import TaskSpec
from forethought.trainers.mbpo import MixedReplayBuffer, branch
from forethought.trainers.offline_config import MOPOConfig
from forethought.types import TransitionBatch

IMAGINED_ARRAYS = ("observations", "actions", "rewards", "next_observations", "dones")


class _SpacesOnly(gym.Env):
    """What SB3 needs to build SAC: the spaces. SAC never steps it."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        raise RuntimeError(
            "this SAC learns from transitions it is given (planner's or logged); it never acts"
        )

    def step(self, action):
        raise RuntimeError(
            "this SAC learns from transitions it is given (planner's or logged); it never acts"
        )


class ActorCritic:
    """SB3 SAC fed with the planner's transitions; trains on `train_freq`'s schedule. (Offline
    MOPO uses it too, with a replay buffer class that mixes dataset and imagined rows; `config`
    then only needs SAC's own settings: gamma, learning_rate, batch_size, hidden_size.)"""

    def __init__(
        self,
        config: LoopConfig | MOPOConfig,
        observation_space: gym.Space,
        action_space: gym.Space,
        capacity: int,
        seed: int,
        device: str = "cpu",
        replay_buffer_class: type | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
    ):
        self.config = config
        # SAC's initial weights come from the run's seed, whatever the global stream holds.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.sac = SAC(
                "MlpPolicy",
                _SpacesOnly(observation_space, action_space),
                learning_rate=config.learning_rate,
                buffer_size=capacity,
                batch_size=config.batch_size,
                gamma=config.gamma,
                learning_starts=0,
                policy_kwargs={"net_arch": [config.hidden_size, config.hidden_size]},
                replay_buffer_class=replay_buffer_class,
                replay_buffer_kwargs=replay_buffer_kwargs,
                device=device,
                seed=seed,
            )
        self.sac.set_logger(configure(folder=None, format_strings=[]))
        self.rng = np.random.default_rng([seed, 1])  # seeds every batch of updates
        self.pending = 0  # transitions added since SAC last trained
        self.updates = 0
        self.imagined = 0  # imagined transitions stored so far (--loop.imagined-ratio)

    def observe(self, obs, action, reward, next_obs, terminated: bool, truncated: bool) -> None:
        """Add one real transition (environment units); train when the schedule says so."""
        self._add(obs, action, reward, next_obs, terminated, truncated)
        self.pending += 1
        enough = self.sac.replay_buffer.size() >= self.config.learning_starts
        if self.pending >= self.config.train_freq and enough:
            self.train(self.pending * self.config.gradient_steps)
            self.pending = 0

    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The actor's deterministic actions for a batch of observations (environment units);
        `rows` (which evaluation episodes they belong to) is unused: the actor has no state."""
        return self.sac.predict(np.asarray(obs, np.float32), deterministic=True)[0]

    def _add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        timeout = bool(truncated and not terminated)  # bootstrapped through, as SB3 does
        self.sac.replay_buffer.add(
            np.asarray(obs, np.float32)[None],
            np.asarray(next_obs, np.float32)[None],
            self.sac.policy.scale_action(np.asarray(action, np.float32))[None],
            np.array([reward], np.float32),
            np.array([terminated or truncated]),
            [{"TimeLimit.truncated": timeout}],
        )

    def train(self, gradient_steps: int) -> None:
        seed = int(self.rng.integers(2**32))
        # SB3 samples its batches from numpy's legacy global stream: seeded here, then restored.
        numpy_state = np.random.get_state()  # noqa: NPY002
        devices = [self.sac.device] if self.sac.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)  # noqa: NPY002
            try:
                self.sac.train(gradient_steps=gradient_steps, batch_size=self.config.batch_size)
            finally:
                np.random.set_state(numpy_state)  # noqa: NPY002
        self.updates += gradient_steps

    def imagine(
        self, dynamics: DynamicsModel, task: TaskSpec, start_obs: np.ndarray, branches: int,
        length: int,
    ) -> int:  # fmt: skip
        """Branch `branches` rollouts of `length` steps from rows of `start_obs` into the model
        part of the replay buffer (the oldest overwritten); returns how many were stored."""
        seed = int(self.rng.integers(2**32))
        starts = np.random.default_rng(seed).integers(0, len(start_obs), size=branches)
        generator = torch.Generator(self.sac.device).manual_seed(seed)
        devices = [self.sac.device] if self.sac.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)  # SB3 samples the actor's actions from the global stream
            obs = np.asarray(start_obs[starts], np.float32)
            added = branch(self.sac, self.sac.replay_buffer, dynamics, task, obs, length, generator)
        self.imagined += added
        return added

    def stats(self) -> dict[str, float | int | None]:
        """The latest training losses (None before the first update)."""
        logged = self.sac.logger.name_to_value
        return {
            "critic_updates": self.updates,
            "critic_loss": _maybe(logged.get("train/critic_loss")),
            "actor_loss": _maybe(logged.get("train/actor_loss")),
            "ent_coef": _maybe(logged.get("train/ent_coef")),
            **({"imagined_transitions": self.imagined} if self._mixed() else {}),
        }

    def _mixed(self) -> bool:
        return isinstance(self.sac.replay_buffer, MixedReplayBuffer)

    def refill(self, data: TransitionBatch[np.ndarray]) -> None:
        """Rebuild SAC's replay buffer from the run's (checkpointed) transitions, in order."""
        self.sac.replay_buffer.reset()
        for row in range(len(data)):
            self._add(
                data.obs[row],
                data.action[row],
                data.reward[row],
                data.next_obs[row],
                bool(data.terminated[row]),
                bool(data.truncated[row]),
            )

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimisers, entropy coefficient, update count and the updates' seed stream
        (the replay buffer is rebuilt from the run's buffer on resume)."""
        buffer = io.BytesIO()
        torch.save(self.sac.get_parameters(), buffer)
        log_ent_coef = getattr(self.sac, "log_ent_coef", None)
        return {
            "parameters": buffer.getvalue(),
            "log_ent_coef": None if log_ent_coef is None else log_ent_coef.detach().clone(),
            "n_updates": self.sac._n_updates,
            "updates": self.updates,
            "pending": self.pending,
            "rng": self.rng.bit_generator.state,
            **({"imagined": self._imagined_state()} if self._mixed() else {}),
        }

    def _imagined_state(self) -> dict[str, Any]:
        """The model part of a mixed replay buffer: not rebuilt from real data, so saved whole."""
        model = self.sac.replay_buffer.model
        return {
            **{name: getattr(model, name).copy() for name in IMAGINED_ARRAYS},
            "pos": model.pos, "full": model.full, "count": self.imagined,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        parameters = torch.load(io.BytesIO(state["parameters"]), weights_only=False)
        self.sac.set_parameters(parameters, exact_match=True, device=self.sac.device)
        if state["log_ent_coef"] is not None:
            with torch.no_grad():
                self.sac.log_ent_coef.copy_(state["log_ent_coef"])
        self.sac._n_updates = state["n_updates"]
        self.updates, self.pending = state["updates"], state["pending"]
        self.rng.bit_generator.state = state["rng"]
        if "imagined" in state and self._mixed():  # (a reader of the weights alone skips it)
            model, saved = self.sac.replay_buffer.model, state["imagined"]
            for name in IMAGINED_ARRAYS:
                getattr(model, name)[...] = saved[name]
            model.pos, model.full, self.imagined = saved["pos"], saved["full"], saved["count"]


def _maybe(value: Any) -> float | None:
    return None if value is None else float(value)
