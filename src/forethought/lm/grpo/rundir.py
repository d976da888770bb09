"""A GRPO run's directory: a `forethought.storage.RunDirectory` (config.json, metrics.jsonl and the
lock) plus the trainer's checkpoints and one evaluation per checkpoint.

    RUN_DIR/config.json              the resolved GRPOConfig
    RUN_DIR/metrics.jsonl            one row per evaluated checkpoint (step 0 is the base policy)
    RUN_DIR/train_log.jsonl          TRL's training statistics, one row per logged step
    RUN_DIR/grpo.png                 held-out gold and training reward against training tokens
    RUN_DIR/checkpoints/checkpoint-N the Trainer's checkpoint: weights (or the PEFT adapter),
                                     optimizer, scheduler, RNG states, trainer_state.json
    RUN_DIR/evals/step_N/            metrics.json (with the compute ledger), eval.json
                                     (per prompt), value.npz (the predictor refitted to it)

A checkpoint counts as finished once `evals/step_N/` exists: it is built in `step_N.tmp/` and
renamed in one `os.replace` after the checkpoint was written, so a kill at any moment leaves a
consistent pair, and a resume starts from the newest finished one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path

from forethought.lm.grpo.config import GRPOConfig
from forethought.storage import RunDirectory, atomic_write_text, read_json, write_json

_STEP = re.compile(r"^step_(\d+)$")


class GRPORunDir(RunDirectory):
    """The files of one GRPO run."""

    run_files = ("grpo.png", "checkpoints", "evals", "train_log.jsonl")

    @classmethod
    def create(cls, path: Path, config: GRPOConfig) -> GRPORunDir:
        run = cls(path)
        run.create_directory(asdict(config))
        return run

    @classmethod
    def open(cls, path: Path, *, lock: bool = True) -> tuple[GRPORunDir, GRPOConfig]:
        run = cls(path)
        data = run.open_directory("--resume", lock=lock)
        try:
            return run, GRPOConfig.from_dict(data, run.config_path)
        except BaseException:
            run.close()
            raise

    def save(self, config: GRPOConfig) -> None:
        self.save_config(asdict(config))

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"checkpoint-{step}"

    def eval_dir(self, step: int) -> Path:
        return self.path / "evals" / f"step_{step}"

    def finished_steps(self) -> list[int]:
        """Steps whose evaluation is complete, ascending (0, the base policy, first)."""
        root = self.path / "evals"
        found = [int(m[1]) for p in root.glob("step_*") if (m := _STEP.match(p.name))]
        return sorted(s for s in found if (self.eval_dir(s) / "metrics.json").exists())

    def last_finished(self) -> int | None:
        """The newest step with a checkpoint and its evaluation (0 when only the base is)."""
        steps = [s for s in self.finished_steps() if s == 0 or self.checkpoint(s).is_dir()]
        return steps[-1] if steps else None

    def begin(self, step: int) -> Path:
        tmp = self.path / "evals" / f"step_{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, step: int, tmp: Path, metrics: dict) -> None:
        write_json(tmp / "metrics.json", metrics)
        os.replace(tmp, self.eval_dir(step))
        self.write_metrics()

    def rows(self) -> list[dict]:
        return [
            read_json(self.eval_dir(s) / "metrics.json", f"step {s}'s metrics")
            for s in self.finished_steps()
        ]

    def write_metrics(self) -> None:
        """Rebuild metrics.jsonl from the finished evaluations (so it can never disagree)."""
        self.rewrite_metrics(self.rows())

    def cleanup(self) -> int:
        """Drop what a kill left unfinished: evaluation scratch, and checkpoints newer than the
        newest finished step (the resume redoes those steps). Returns that step."""
        for tmp in (self.path / "evals").glob("step_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
        last = self.last_finished() or 0
        for ckpt in self.checkpoints.glob("checkpoint-*"):
            if int(ckpt.name.split("-")[1]) > last:
                shutil.rmtree(ckpt, ignore_errors=True)
        self.write_train_log(self.train_log(last))
        return last

    def train_log(self, up_to: int | None = None) -> list[dict]:
        path = self.path / "train_log.jsonl"
        if not path.exists():
            return []
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [r for r in rows if up_to is None or r["step"] <= up_to]

    def write_train_log(self, rows: list[dict]) -> None:
        atomic_write_text(
            self.path / "train_log.jsonl", "".join(json.dumps(r) + "\n" for r in rows)
        )

    def append_train_log(self, row: dict) -> None:
        with open(self.path / "train_log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
