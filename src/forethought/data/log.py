"""The append-only transition log that makes runs resumable: every transition is appended the
moment the environment returns it, so a kill at any point loses at most the step in flight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from forethought.errors import DataError
from forethought.storage import atomic_write_bytes, read_json
from forethought.types import TransitionBatch


class TransitionLog:
    """Append-only, crash-safe log of transitions: one fixed-size float64 record per step.

    A record is [episode, t, obs (O), action (A), reward, next_obs (O), terminated, truncated].
    Each `append` is written and flushed before the next environment step, so a process killed
    at any point leaves at most one partial record at the end, which opening the log cuts off.
    Records are never rewritten: a resumed run that replays an interrupted episode leaves the
    interrupted attempt in place and lists its index range as abandoned (`committed`).
    """

    def __init__(self, path: str | Path, obs_dim: int, action_dim: int):
        self.path = Path(path)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.record_size = 2 + obs_dim + action_dim + 1 + obs_dim + 2
        meta_path = self.path.with_suffix(".json")
        meta = {"obs_dim": obs_dim, "action_dim": action_dim, "record": "float64"}
        if meta_path.exists():
            stored = read_json(meta_path, "the transition log's record layout")
            if stored != meta:
                raise DataError(
                    f"{meta_path} describes records {stored}, but this run's environment needs "
                    f"{meta}; the log belongs to another run"
                )
        else:
            atomic_write_bytes(meta_path, json.dumps(meta).encode())
        self._truncate_partial_record()
        self._file = open(self.path, "ab")

    def _truncate_partial_record(self) -> None:
        if not self.path.exists():
            return
        record_bytes = 8 * self.record_size
        size = self.path.stat().st_size
        if size % record_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(size - size % record_bytes)

    def __len__(self) -> int:
        return self.path.stat().st_size // (8 * self.record_size) if self.path.exists() else 0

    def append(self, episode, t, obs, action, reward, next_obs, terminated, truncated) -> None:
        record = np.concatenate(
            [
                [episode, t],
                np.asarray(obs, np.float64).ravel(),
                np.asarray(action, np.float64).ravel(),
                [reward],
                np.asarray(next_obs, np.float64).ravel(),
                [float(terminated), float(truncated)],
            ]
        )
        # One write call per record; flushing hands it to the OS, which keeps it through a
        # SIGKILL of this process (fsync would only add protection against power loss).
        self._file.write(record.tobytes())
        self._file.flush()

    def records(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Raw records [start, stop) as an N x record_size float64 array."""
        if not self.path.exists():
            return np.zeros((0, self.record_size))
        raw = np.fromfile(self.path, dtype=np.float64)
        raw = raw[: len(raw) // self.record_size * self.record_size]
        return raw.reshape(-1, self.record_size)[start:stop]

    def read(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, TransitionBatch[np.ndarray]]:
        """Records [start, stop): (episode ids, step-in-episode t, transitions)."""
        raw = self.records(start, stop)
        return raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), self._batch(raw)

    def committed(self, abandoned: list[tuple[int, int]], stop: int) -> TransitionBatch[np.ndarray]:
        """The transitions a run counts: records before `stop` outside the abandoned ranges."""
        raw = self.records(0, stop)
        keep = np.ones(len(raw), bool)
        for begin, end in abandoned:
            keep[begin:end] = False
        return self._batch(raw[keep])

    def check(self, start: int = 0, stop: int | None = None) -> None:
        """Refuse records that no run writes: a fractional or negative episode or step index,
        flags other than 0 / 1, non-finite numbers (a damaged or foreign file)."""
        raw = self.records(start, stop)
        index = raw[:, :2]
        flags = raw[:, -2:]
        bad = (
            ~np.isfinite(raw).all(axis=1)
            | (index < 0).any(axis=1)
            | (index != np.round(index)).any(axis=1)
            | ~np.isin(flags, (0.0, 1.0)).all(axis=1)
        )
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{self.path} is damaged at record {row} (not a transition this program wrote); "
                "restore the file or start a new run"
            )

    def _batch(self, raw: np.ndarray) -> TransitionBatch[np.ndarray]:
        o, a = self.obs_dim, self.action_dim
        cols = np.cumsum([2, o, a, 1, o, 1, 1])
        return TransitionBatch(
            obs=raw[:, 2 : cols[1]].astype(np.float32),
            action=raw[:, cols[1] : cols[2]].astype(np.float32),
            reward=raw[:, cols[2]].astype(np.float32),
            next_obs=raw[:, cols[3] : cols[4]].astype(np.float32),
            terminated=raw[:, cols[4]] > 0.5,
            truncated=raw[:, cols[5]] > 0.5,
        )

    def close(self) -> None:
        self._file.close()
