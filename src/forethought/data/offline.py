"""Logged datasets in Minari's format: episodes written to the local Minari store, read back as
checked transitions for offline training and off-policy evaluation.

Datasets live where Minari keeps them (`$MINARI_DATASETS_PATH`, default ~/.minari/datasets);
nothing is ever downloaded. Episodes are written with `minari.create_dataset_from_buffers` in
Minari's arrow format (Minari's `DataCollector` needs jax, which nothing else here uses). The
reference returns of a normalised score, 100 x (R - R_min) / (R_max - R_min), are Minari's own
`ref_min_score` / `ref_max_score` metadata.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from forethought.errors import DataError
from forethought.types import TransitionBatch

DATA_FORMAT = "arrow"


@dataclass(frozen=True)
class Episode:
    """One logged episode: T steps, T + 1 observations (the last one after the final step)."""

    observations: np.ndarray  # (T + 1) x O
    actions: np.ndarray  # T x A
    rewards: np.ndarray  # T
    terminations: np.ndarray  # T (bool)
    truncations: np.ndarray  # T (bool)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def total_reward(self) -> float:
        return float(np.sum(self.rewards))


@dataclass(frozen=True)
class OfflineDataset:
    """A dataset read back for training: every transition, plus what evaluation needs."""

    name: str
    env_id: str | None
    transitions: TransitionBatch[np.ndarray]  # actions in environment units
    start_obs: np.ndarray  # episodes x O: where each logged episode began
    episode_returns: np.ndarray  # episodes
    episode_lengths: np.ndarray  # episodes
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    ref_min_score: float | None
    ref_max_score: float | None
    algorithm: str | None

    def normalized_score(self, returns: np.ndarray | float) -> np.ndarray:
        """100 x (R - R_min) / (R_max - R_min) with the dataset's reference returns."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DataError(
                f"dataset '{self.name}' stores no reference returns (ref_min_score / "
                "ref_max_score); datasets from `forethought dataset make-tiers` have them"
            )
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (np.asarray(returns, float) - self.ref_min_score) / span


def datasets_root() -> Path:
    """Where Minari reads and writes local datasets."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def local_dataset_names() -> list[str]:
    """Every dataset in the local store."""
    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(minari.list_local_datasets())


def dataset_exists(name: str) -> bool:
    return (datasets_root() / name / "data").is_dir()


def check_writable(name: str, overwrite: bool) -> None:
    """Refuse, before any work is done, a dataset id Minari cannot store or one that exists."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        _, _, version = parse_dataset_id(name)
    except (ValueError, TypeError):
        version = None
    if version is None:
        raise DataError(
            f"'{name}' is not a Minari dataset id: use (namespace/)name-vN, e.g. pendulum/medium-v0"
        )
    if dataset_exists(name) and not overwrite:
        raise DataError(
            f"dataset '{name}' already exists in {datasets_root()}; pass --overwrite to "
            "replace it or choose another name"
        )


def write_dataset(
    name: str,
    episodes: list[Episode],
    env_id: str,
    *,
    algorithm: str,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `episodes` as Minari dataset `name` (e.g. "pendulum/medium-v0") for `env_id`."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if not episodes or not any(len(e) for e in episodes):
        raise DataError(f"dataset '{name}': no transitions to write")
    for i, episode in enumerate(episodes):
        _check_episode(name, i, episode)
    check_writable(name, overwrite)
    if dataset_exists(name):
        shutil.rmtree(datasets_root() / name)
    # Minari stores arrays in the dtypes of the env's spaces (Hopper's observations are float64)
    spaces = gym.make(env_id)
    obs_dtype, action_dtype = spaces.observation_space.dtype, spaces.action_space.dtype
    spaces.close()
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=e.observations.astype(obs_dtype),
            actions=e.actions.astype(action_dtype),
            rewards=e.rewards.astype(np.float64),
            terminations=e.terminations.astype(bool),
            truncations=e.truncations.astype(bool),
        )
        for i, e in enumerate(episodes)
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minari.create_dataset_from_buffers(
                name,
                buffers,
                env=env_id,
                algorithm_name=algorithm,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                description=description,
                data_format=DATA_FORMAT,
            )
    except ValueError as exc:  # Minari's own checks, e.g. a malformed dataset id
        raise DataError(f"cannot write dataset '{name}': {exc}") from None
    return datasets_root() / name


def load_episodes(name: str) -> tuple[list[Episode], object]:
    """The episodes of dataset `name` and Minari's dataset object (for its metadata)."""
    import minari

    if not dataset_exists(name):
        known = local_dataset_names()
        listed = ", ".join(known) if known else "none"
        raise DataError(
            f"no dataset '{name}' in {datasets_root()} (local datasets: {listed}); make one with "
            "`forethought dataset collect` or `forethought dataset make-tiers`"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = minari.load_dataset(name)
        except ImportError as exc:  # e.g. an HDF5 dataset without h5py installed
            raise DataError(f"cannot read dataset '{name}': {exc}") from None
        episodes = [
            Episode(
                observations=np.asarray(e.observations, np.float32),
                actions=np.asarray(e.actions, np.float32).reshape(len(e.rewards), -1),
                rewards=np.asarray(e.rewards, np.float32),
                terminations=np.asarray(e.terminations, bool),
                truncations=np.asarray(e.truncations, bool),
            )
            for e in dataset.iterate_episodes()
        ]
    return episodes, dataset


def load_offline_dataset(name: str) -> OfflineDataset:
    """Dataset `name` as checked transitions; a one-line `DataError` for a missing, empty or
    non-finite dataset."""
    episodes, dataset = load_episodes(name)
    episodes = [e for e in episodes if len(e)]
    if not episodes:
        raise DataError(f"dataset '{name}' is empty (no transitions)")
    for i, episode in enumerate(episodes):
        _check_episode(name, i, episode)
    observation_space, action_space = dataset.observation_space, dataset.action_space
    if not (
        isinstance(observation_space, gym.spaces.Box) and isinstance(action_space, gym.spaces.Box)
    ):
        raise DataError(
            f"dataset '{name}' has {type(observation_space).__name__} observations and "
            f"{type(action_space).__name__} actions; offline training needs Box spaces"
        )
    spec = dataset.spec.env_spec
    metadata = dataset.storage.metadata
    return OfflineDataset(
        name=name,
        env_id=None if spec is None else spec.id,
        transitions=_transitions(episodes),
        start_obs=np.stack([e.observations[0] for e in episodes]),
        episode_returns=np.array([e.total_reward for e in episodes]),
        episode_lengths=np.array([len(e) for e in episodes]),
        observation_space=observation_space,
        action_space=action_space,
        ref_min_score=_maybe_float(metadata.get("ref_min_score")),
        ref_max_score=_maybe_float(metadata.get("ref_max_score")),
        algorithm=metadata.get("algorithm_name"),
    )


def check_spaces_match(dataset: OfflineDataset, env: gym.Env, env_id: str) -> None:
    """Refuse a dataset whose observation or action space is not the environment's."""
    for what, logged, actual in (
        ("observation", dataset.observation_space, env.observation_space),
        ("action", dataset.action_space, env.action_space),
    ):
        same = (
            isinstance(actual, gym.spaces.Box)
            and logged.shape == actual.shape
            and np.allclose(logged.low, actual.low)
            and np.allclose(logged.high, actual.high)
        )
        if not same:
            raise DataError(
                f"dataset '{dataset.name}' has {what} space {logged}, but {env_id} has {actual}: "
                "the dataset was logged on another environment"
            )


def _transitions(episodes: list[Episode]) -> TransitionBatch[np.ndarray]:
    return TransitionBatch(
        obs=np.concatenate([e.observations[:-1] for e in episodes]),
        action=np.concatenate([e.actions for e in episodes]),
        reward=np.concatenate([e.rewards for e in episodes]).astype(np.float32),
        next_obs=np.concatenate([e.observations[1:] for e in episodes]),
        terminated=np.concatenate([e.terminations for e in episodes]),
        truncated=np.concatenate([e.truncations for e in episodes]),
    )


def _check_episode(name: str, index: int, episode: Episode) -> None:
    t = len(episode.rewards)
    shapes = {
        "observations": (episode.observations.shape[0], t + 1),
        "actions": (episode.actions.shape[0], t),
        "terminations": (len(episode.terminations), t),
        "truncations": (len(episode.truncations), t),
    }
    for field, (got, expected) in shapes.items():
        if got != expected:
            raise DataError(
                f"dataset '{name}' episode {index}: {got} {field} for {t} rewards "
                f"(expected {expected})"
            )
    for field in ("observations", "actions", "rewards"):
        values = getattr(episode, field)
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            raise DataError(
                f"dataset '{name}' episode {index} has non-finite {field} (NaN or inf) at step "
                f"{int(np.flatnonzero(bad)[0])}"
            )


def _maybe_float(value) -> float | None:
    return None if value is None else float(value)
