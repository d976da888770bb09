"""What an exact continuation of a Stable-Baselines3 run needs beyond SB3's own save: the replay
buffer without its empty rows, the training environments mid-episode (layer by layer), every
random generator the loop draws from, the gSDE and action noise. `trainers/sb3.py` writes and
reads these at its checkpoints."""

from __future__ import annotations

import copy
import io
import pickle
import random
from typing import Any

import cloudpickle
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from forethought.types import TransitionBatch

_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def transitions_of(buffer: SB3ReplayBuffer) -> TransitionBatch[np.ndarray]:
    """Every transition an SB3 replay buffer holds (each environment's rows one after another
    within a step; actions in the policy's [-1, 1] scale, as SB3 stores them)."""
    n = buffer.size()

    def rows(array: np.ndarray) -> np.ndarray:
        return array[:n].reshape(n * array.shape[1], *array.shape[2:])

    timeouts = rows(buffer.timeouts)
    return TransitionBatch(
        obs=rows(buffer.observations),
        action=rows(buffer.actions),
        reward=rows(buffer.rewards),
        next_obs=rows(buffer.next_observations),
        terminated=(rows(buffer.dones) * (1 - timeouts)).astype(bool),
        truncated=timeouts.astype(bool),
    )


def filled_part(buffer):
    """A shallow copy of an SB3 replay buffer whose arrays hold only the rows written so far:
    SB3 allocates all `buffer_size` rows up front (a million by default, ~40 MB on Pendulum),
    and a checkpoint need not carry the empty ones. MBPO's imagined buffer likewise."""
    part = copy.copy(buffer)
    rows = buffer.buffer_size if buffer.full else buffer.pos
    for name in _BUFFER_ARRAYS:
        if getattr(buffer, name, None) is not None:
            setattr(part, name, getattr(buffer, name)[:rows])
    if isinstance(getattr(buffer, "model", None), SB3ReplayBuffer):
        part.model = filled_part(buffer.model)
    return part


def load_replay_buffer(model: OffPolicyAlgorithm, data: bytes) -> None:
    """Give `model` the replay buffer a checkpoint holds (saved by `filled_part`)."""
    model.load_replay_buffer(io.BytesIO(data))
    _refill(model.replay_buffer)


def _refill(buffer) -> None:
    """Undo `filled_part` after loading: the arrays get their full `buffer_size` rows again,
    the unwritten ones zero as SB3 allocates them."""
    for name in _BUFFER_ARRAYS:
        array = getattr(buffer, name, None)
        if array is not None and len(array) < buffer.buffer_size:
            full = np.zeros((buffer.buffer_size, *array.shape[1:]), dtype=array.dtype)
            full[: len(array)] = array
            setattr(buffer, name, full)
    if isinstance(getattr(buffer, "model", None), SB3ReplayBuffer):
        _refill(buffer.model)


def loop_state(model: BaseAlgorithm, callback_state: dict[str, Any]) -> dict[str, Any]:
    """What SB3's own save leaves out and an exact continuation needs: the training
    environments mid-episode, the observation SB3 acts on next, every random generator the
    loop draws from, the gSDE noise, the action noise and the evaluation schedule."""
    vec_env = model.get_env()
    inner = vec_env.venv if isinstance(vec_env, VecNormalize) else vec_env
    state: dict[str, Any] = {
        "envs": snapshot_envs(inner),
        "last_obs": model._last_obs,
        "last_original_obs": model._last_original_obs,
        "last_episode_starts": model._last_episode_starts,
        "python_random": random.getstate(),
        "numpy_global": np.random.get_state(),  # noqa: NPY002 - SB3's buffers and noise use it
        "torch": torch.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
        "action_noise": pickle.dumps(model.action_noise),
        "callback": callback_state,
    }
    if torch.cuda.is_available() and model.device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    if isinstance(vec_env, VecNormalize):
        state["normalizer_returns"] = vec_env.returns.copy()
    dist = _sde_distribution(model)
    if dist is not None:
        state["sde"] = {
            name: getattr(dist, name).clone()
            for name in ("exploration_mat", "exploration_matrices")
            if getattr(dist, name, None) is not None
        }
    return state


def restore_generators(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Put back, at the start of a resumed run's first rollout, what SB3's `learn` set-up and
    rollout start changed: generators, gSDE noise, action noise. (MBPO's rollout streams are
    restored when the run is built; nothing draws from them before this point.)"""
    random.setstate(state["python_random"])
    np.random.set_state(state["numpy_global"])  # noqa: NPY002 - see loop_state
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    noise = pickle.loads(state["action_noise"])
    if model.action_noise is not None and noise is not None:
        vars(model.action_noise).update(vars(noise))  # learn() holds this very object
    dist = _sde_distribution(model)
    for name, value in state.get("sde", {}).items():
        setattr(dist, name, value.to(model.device))


def _sde_distribution(model: BaseAlgorithm) -> Any:
    if not model.use_sde:
        return None
    owner = model.actor if isinstance(model, OffPolicyAlgorithm) else model.policy
    return owner.action_dist


# Attributes of an environment (or wrapper) that are not part of its state: the wrapped env
# (restored layer by layer), renderers, and MuJoCo's constant model description.
_NOT_STATE = {"env", "mujoco_renderer", "viewer", "screen", "clock"}


def _layers(env: Any):
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env


def snapshot_envs(vec_env: DummyVecEnv) -> bytes:
    """Every training environment's state, layer by layer (Monitor, TimeLimit, ..., the
    unwrapped env with its np_random and simulator data), plus DummyVecEnv's pending reset
    seeds. Environments are not pickled whole: gymnasium's EzPickle would rebuild them fresh."""
    layers = [
        [
            {
                k: v
                for k, v in vars(layer).items()
                if k not in _NOT_STATE and type(v).__name__ != "MjModel"
            }
            for layer in _layers(env)
        ]
        for env in vec_env.envs
    ]
    return cloudpickle.dumps(
        {"layers": layers, "seeds": vec_env._seeds, "options": vec_env._options}
    )


def restore_envs(vec_env: DummyVecEnv, data: bytes) -> None:
    saved = cloudpickle.loads(data)
    for env, env_layers in zip(vec_env.envs, saved["layers"], strict=True):
        for layer, state in zip(_layers(env), env_layers, strict=True):
            vars(layer).update(state)
    vec_env._seeds, vec_env._options = saved["seeds"], saved["options"]
