"""Replay buffer (numpy ring) and the append-only transition log that makes runs resumable.

The buffer is what models train on. The log is what survives a SIGKILL: every transition is
appended to it the moment the environment returns it, so a resumed run can rebuild its buffer
with every completed transition exactly once (a checkpoint taken only at episode boundaries
would lose the partial episode).
"""

from __future__ import annotations

import numpy as np

from forethought.errors import DataError
from forethought.types import TransitionBatch


class ReplayBuffer:
    """A fixed-capacity ring of transitions; the oldest are overwritten once full."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 1_000_000):
        if capacity <= 0:
            raise DataError(f"buffer capacity must be positive, got {capacity}")
        self.obs_dim, self.action_dim, self.capacity = obs_dim, action_dim, capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)  # N x O
        self.action = np.zeros((capacity, action_dim), np.float32)  # N x A
        self.reward = np.zeros(capacity, np.float32)  # N
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)  # N x O
        self.terminated = np.zeros(capacity, bool)  # N
        self.truncated = np.zeros(capacity, bool)  # N
        self.total_added = 0  # transitions ever added; also the index of the next one

    def __len__(self) -> int:
        return min(self.total_added, self.capacity)

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Add one transition."""
        self.add_batch(
            TransitionBatch(
                obs=np.asarray(obs, np.float32)[None],
                action=np.asarray(action, np.float32).reshape(1, -1),
                reward=np.asarray([reward], np.float32),
                next_obs=np.asarray(next_obs, np.float32)[None],
                terminated=np.asarray([terminated], bool),
                truncated=np.asarray([truncated], bool),
            )
        )

    def add_batch(self, batch: TransitionBatch[np.ndarray]) -> None:
        """Add B transitions at once, after checking shapes and finiteness."""
        self._check(batch)
        n_added = len(batch)
        skipped = max(0, n_added - self.capacity)  # only the newest `capacity` rows survive
        batch = batch[skipped:]
        idx = (self.total_added + skipped + np.arange(len(batch))) % self.capacity
        self.obs[idx] = batch.obs
        self.action[idx] = batch.action
        self.reward[idx] = batch.reward
        self.next_obs[idx] = batch.next_obs
        self.terminated[idx] = batch.terminated
        self.truncated[idx] = batch.truncated
        self.total_added += n_added

    def _check(self, batch: TransitionBatch[np.ndarray]) -> None:
        n = len(batch)
        expected = {
            "obs": (n, self.obs_dim),
            "action": (n, self.action_dim),
            "reward": (n,),
            "next_obs": (n, self.obs_dim),
            "terminated": (n,),
            "truncated": (n,),
        }
        for name, shape in expected.items():
            value = np.asarray(getattr(batch, name))
            if value.shape != shape:
                raise DataError(
                    f"transition field '{name}' has shape {value.shape}, expected {shape}"
                )
            if name in ("terminated", "truncated"):
                if value.dtype != bool:
                    raise DataError(f"transition field '{name}' must be bool, got {value.dtype}")
            elif not np.issubdtype(value.dtype, np.number):
                raise DataError(f"transition field '{name}' must be numeric, got {value.dtype}")
            elif not np.isfinite(value).all():
                row = int(np.argwhere(~np.isfinite(value).reshape(n, -1).all(axis=1))[0, 0])
                raise DataError(
                    f"non-finite value (NaN or inf) in '{name}' at environment step "
                    f"{self.total_added + row}; the environment or wrapper produced it"
                )

    def _ordered_indices(self) -> np.ndarray:
        """Indices of stored rows from oldest to newest."""
        n = len(self)
        start = self.total_added - n
        return (start + np.arange(n)) % self.capacity

    def all(self) -> TransitionBatch[np.ndarray]:
        """Every stored transition, oldest first."""
        return self._gather(self._ordered_indices())

    def since(self, index: int) -> TransitionBatch[np.ndarray]:
        """The stored transitions whose run-wide index (0 = the first ever added) is `index` or
        later, oldest first."""
        order = self._ordered_indices()
        first_stored = self.total_added - len(self)
        return self._gather(order[max(0, index - first_stored) :])

    def _gather(self, idx: np.ndarray) -> TransitionBatch[np.ndarray]:
        return TransitionBatch(
            obs=self.obs[idx],
            action=self.action[idx],
            reward=self.reward[idx],
            next_obs=self.next_obs[idx],
            terminated=self.terminated[idx],
            truncated=self.truncated[idx],
        )

    # ---- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Stored rows (oldest first) plus the counters needed to rebuild the ring exactly."""
        data = self.all()
        state = {name: getattr(data, name) for name in TransitionBatch.__dataclass_fields__}
        state["meta"] = np.array([self.obs_dim, self.action_dim, self.capacity, self.total_added])
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> ReplayBuffer:
        obs_dim, action_dim, capacity, total_added = (int(x) for x in state["meta"])
        buffer = cls(obs_dim, action_dim, capacity)
        batch = TransitionBatch(**{k: state[k] for k in TransitionBatch.__dataclass_fields__})
        buffer.total_added = total_added - len(batch)  # so row i lands where it was
        buffer.add_batch(batch)
        return buffer
