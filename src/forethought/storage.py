"""What every run keeps on disk, and how it is kept safe: atomic writes, the run directory with
its lock, checkpoints and RNG state. Control runs and language-model runs share all of it.

Every file is replaced atomically (temp file + rename), so a kill at any moment leaves the
previous complete version behind. A run directory is locked by the process that writes it
(`fcntl.flock`, released by the kernel when that process dies, also on SIGKILL), so a second
writer is refused with the holder's process id instead of interleaving its files.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought.errors import ConfigError, DataError, ForethoughtError

LOCK_NAME = ".lock"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2))


def read_json(path: Path, what: str) -> Any:
    """The JSON in `path`, or a one-line error naming the file and what it should hold."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path} is missing (it should hold {what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); it should hold {what}") from None


def save_torch(path: Path, state: dict[str, Any]) -> None:
    out = io.BytesIO()
    torch.save(state, out)
    atomic_write_bytes(path, out.getvalue())


def load_torch(path: Path) -> dict[str, Any]:
    """A checkpoint written by `save_torch`; a damaged file is a one-line error."""
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
    except (
        RuntimeError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
    ) as err:
        reason = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise DataError(
            f"{path} is damaged and cannot be read ({reason}); restore it from a copy or start "
            "a new run"
        ) from None
    if not isinstance(state, dict):
        raise DataError(f"{path} is not a forethought checkpoint")
    return state


class RunDirBusy(ForethoughtError):
    """Another live process is writing the run directory."""


class RunLock:
    """An exclusive lock on a run directory, held while a process writes it.

    The lock file records the holder's pid and command line, so the refusal can name it."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._file = None

    def acquire(self) -> RunLock:
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunDirBusy(
                f"{self.path.parent} is in use by {holder}; wait for it to finish or stop it, "
                "then try again"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} ({' '.join(sys.argv[:3])})")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunDirectory:
    """The base of every run directory: config.json, metrics.jsonl, a lock.

    `create` refuses a directory that already holds a run (or files a run writes without its
    config: leftovers of another run that a new one would append to); `open` refuses a directory
    without a readable config. Both take the lock; `close` releases it."""

    config_name = "config.json"
    metrics_name = "metrics.jsonl"
    run_files: tuple[str, ...] = ()  # files a run of this kind writes besides config and metrics

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = RunLock(self.path)
        self._cpu_at_open = time.process_time()
        self._cpu_before: float | None = None  # the run's CPU seconds when this attempt began

    config_path = property(lambda self: self.path / self.config_name)
    metrics_path = property(lambda self: self.path / self.metrics_name)

    def create_directory(self, config: dict[str, Any]) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                "out", f"{self.path} is a file, not a directory; choose another --out"
            )
        if self.config_path.exists():
            raise ConfigError(
                "out",
                f"{self.path} already holds a run; pass --resume {self.path} to continue it, "
                "or choose another --out",
            )
        stray = [n for n in (self.metrics_name, *self.run_files) if (self.path / n).exists()]
        if stray:
            raise ConfigError(
                "out",
                f"{self.path} holds {', '.join(stray)} but no {self.config_name} (files of a "
                "damaged or foreign run); choose another --out or remove them",
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
            write_json(self.config_path, config)
        except (PermissionError, NotADirectoryError, FileExistsError) as err:
            raise ConfigError(
                "out", f"cannot create a run directory at {self.path} ({err.strerror})"
            ) from None

    def open_directory(self, flag: str = "resume", lock: bool = True) -> dict[str, Any]:
        """The directory's config as a dict, after taking the lock (unless `lock` is False)."""
        if not self.path.is_dir():
            raise ConfigError(flag, f"{self.path} is not a directory")
        if not self.config_path.exists():
            raise ConfigError(flag, f"{self.path} is not a run directory (no config.json in it)")
        if lock:
            self.lock.acquire()
        config = read_json(self.config_path, "the run's configuration")
        if not isinstance(config, dict):
            raise DataError(f"{self.config_path} does not hold a configuration object")
        return config

    def save_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def close(self) -> None:
        self.lock.release()

    def stamp_cpu(self, row: dict[str, Any]) -> None:
        """Stamps `row` in place with the run's `cpu_seconds` so far unless it has its own; a
        trainer that checkpoints a row before appending it stamps it first, so that the
        checkpoint's copy, which a resume writes back, carries the stamp too."""
        row.setdefault("cpu_seconds", self.cpu_seconds())

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Appends `row`, stamped in place (see `stamp_cpu`)."""
        self.stamp_cpu(row)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def cpu_seconds(self) -> float:
        """The CPU time this run has used, over all its attempts: this process's since the
        directory was opened, on top of the last stamp an earlier attempt left in the metrics
        (read at the first stamp, after a resume has dropped the rows it redoes). Unlike wall
        time it does not count time stopped or waiting for a busy core, nor work a kill lost."""
        if self._cpu_before is None:
            stamps = [
                r["cpu_seconds"] for r in read_metrics(self.metrics_path) if "cpu_seconds" in r
            ]
            self._cpu_before = stamps[-1] if stamps else 0.0
        return round(self._cpu_before + time.process_time() - self._cpu_at_open, 3)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a damaged line is a one-line error naming it."""
    rows = []
    if not Path(path).exists():
        return rows
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(f"{path} line {number} is not a JSON object (damaged file)") from None
    return rows


def rng_states(rng: np.random.Generator, generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a run draws from: numpy's, torch's global one, and named generators."""
    return {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        **{name: g.get_state() for name, g in generators.items()},
    }


def restore_rng_states(
    states: dict[str, Any], rng: np.random.Generator, generators: dict[str, torch.Generator]
) -> None:
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])
    for name, g in generators.items():
        g.set_state(states[name])
