"""A self-training run's directory on disk: a `forethought.storage.RunDirectory` (config.json,
metrics.jsonl and the lock that keeps a second writer out) plus one directory per iteration.

    RUN_DIR/config.json     the resolved SelfTrainConfig
    RUN_DIR/metrics.jsonl   one row per finished iteration, rebuilt from iter_K/metrics.json
    RUN_DIR/selftrain.png   gold reward, predictor correlation and proxy-gold gap per iteration
    RUN_DIR/iter_K/         everything iteration K produced; it exists only once K finished

An iteration is built in `iter_K.tmp/` and renamed to `iter_K/` in one `os.replace`, and every
file is written atomically, so a kill at any moment leaves whole iterations only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from forethought.lm.selftrain.config import SelfTrainConfig
from forethought.storage import RunDirectory, read_json, write_json


class RunDir(RunDirectory):
    """The files of one run; an iteration counts as finished once `iter_K/` exists."""

    run_files = ("selftrain.png", "iter_0", "iter_0.tmp")

    @classmethod
    def create(cls, path: Path, config: SelfTrainConfig) -> RunDir:
        """A new run directory holding `config`, locked by this process until `close`."""
        run = cls(path)
        run.create_directory(asdict(config))
        return run

    @classmethod
    def open(cls, path: Path, *, lock: bool = True) -> tuple[RunDir, SelfTrainConfig]:
        """An existing run and its config (locked by this process unless `lock` is False)."""
        run = cls(path)
        data = run.open_directory("--resume", lock=lock)
        try:
            return run, SelfTrainConfig.from_dict(data, run.config_path)
        except BaseException:
            run.close()
            raise

    def save(self, config: SelfTrainConfig) -> None:
        self.save_config(asdict(config))

    def iter_dir(self, k: int) -> Path:
        return self.path / f"iter_{k}"

    def finished(self) -> int:
        """Iterations finished in order from 0 (a gap ends the count)."""
        k = 0
        while (self.iter_dir(k) / "metrics.json").exists():
            k += 1
        return k

    def begin(self, k: int) -> Path:
        """A fresh scratch directory for iteration k (a killed attempt's leftovers removed)."""
        tmp = self.path / f"iter_{k}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, k: int, tmp: Path, metrics: dict) -> None:
        """Mark iteration k finished: metrics into the scratch dir, then one atomic rename."""
        write_json(tmp / "metrics.json", metrics)
        os.replace(tmp, self.iter_dir(k))
        self.write_metrics()

    def rows(self) -> list[dict]:
        return [
            read_json(self.iter_dir(k) / "metrics.json", f"iteration {k}'s metrics")
            for k in range(self.finished())
        ]

    def write_metrics(self) -> None:
        """Rebuild metrics.jsonl from the finished iterations (so it can never disagree)."""
        self.rewrite_metrics(self.rows())

    def cleanup(self) -> None:
        for tmp in self.path.glob("iter_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
