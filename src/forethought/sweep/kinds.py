"""What a sweep can run: `forethought train`, `forethought lm grpo` and `forethought lm selftrain`
configurations. A kind says how its options parse, which settings the sweep decides for every
trial, how a trial starts or continues in its run directory, and which evaluation in the run's
metrics rows the sweep aggregates (the last one is the trial's score)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forethought.config import TrainConfig
from forethought.runtime import configure_cpu

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TrialKind:
    """One command the sweep can run as trials."""

    command: str  # the sweep's --command (train, lm-grpo, lm-selftrain)
    config_class: type
    x_name: str  # progress at an evaluation (env_steps, step, iteration)
    score_name: str  # the evaluated quantity aggregated over seeds
    reserved: dict[str, str]  # settings the sweep decides, and why
    point: Callable[[Row], tuple[float, float] | None]  # an evaluation row's (x, score)
    start: Callable[[Any, Path], list[Row]]  # a new run in run_dir; its metrics rows
    resume: Callable[[Path], list[Row]]  # continue the run in run_dir to its end
    prepare: Callable[[Any, int, Path], Any]  # the trial's config: seed and run directory set

    @property
    def cli(self) -> str:
        """The command as typed after `forethought`."""
        return self.command.replace("lm-", "lm ")

    def from_dict(self, data: dict[str, Any], source: str) -> Any:
        return self.config_class.from_dict(data, source=Path(source))

    def to_dict(self, config: Any) -> dict[str, Any]:
        data = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        return json.loads(json.dumps(data, default=str))

    def curve(self, rows: list[Row]) -> dict[str, list[float]]:
        """Every evaluation point of a run, in progress order (points at one step in the order
        they were recorded: sorting by score as well would put the best one last)."""
        points = sorted((p for p in map(self.point, rows) if p is not None), key=lambda p: p[0])
        return {"x": [x for x, _ in points], "y": [y for _, y in points]}


# -- forethought train ---------------------------------------------------------------------------
def _train_point(row: Row) -> tuple[float, float] | None:
    if row.get("eval_return") is None or row.get("event") not in (None, "evaluation"):
        return None  # episode-end and step-schedule evaluations count; others do not
    return row["env_steps"], row["eval_return"]


def _train_start(config: TrainConfig, run_dir: Path) -> list[Row]:
    from forethought.trainers import train

    return train(config).history


def _train_resume(run_dir: Path) -> list[Row]:
    from forethought.trainers import resume

    return resume(run_dir).history


def _train_prepare(config: TrainConfig, seed: int, run_dir: Path) -> TrainConfig:
    config = dataclasses.replace(config, seed=seed, out=run_dir, quiet=True, resume=None)
    config.validate()
    return config


TRAIN = TrialKind(
    command="train",
    config_class=TrainConfig,
    x_name="env_steps",
    score_name="eval_return",
    reserved={
        "seed": "seeds come from --seeds",
        "out": "each trial's run directory lies under the sweep's --out",
        "resume": "continue a sweep with forethought sweep --resume SWEEP_DIR",
    },
    point=_train_point,
    start=_train_start,
    resume=_train_resume,
    prepare=_train_prepare,
)


# -- forethought lm grpo / lm selftrain ----------------------------------------------------------
def _lm_point(x_name: str) -> Callable[[Row], tuple[float, float] | None]:
    def point(row: Row) -> tuple[float, float] | None:
        plain = row.get("plain")
        return (row[x_name], plain["gold"]) if plain and x_name in row else None

    return point


def _lm_runner(which: str) -> tuple[Callable, Callable]:
    """start(config, run_dir) and resume(run_dir) for an lm training command; one torch thread
    per trial (the sweep's --cpus-per-trial / --workers decide the parallelism)."""

    def classes():
        if which == "grpo":
            from forethought.lm.grpo import GRPORunDir, GRPORunner

            return GRPORunDir, GRPORunner
        from forethought.lm.selftrain import RunDir, SelfTrainer

        return RunDir, SelfTrainer

    def finish(run, config) -> list[Row]:
        configure_cpu(1)
        try:
            return classes()[1](config, run, log=lambda _: None).run_all() or run.rows()
        finally:
            run.close()

    def start(config: Any, run_dir: Path) -> list[Row]:
        return finish(classes()[0].create(run_dir, config), config)

    def resume(run_dir: Path) -> list[Row]:
        return finish(*classes()[0].open(run_dir))

    return start, resume


def _lm_kind(which: str, config_class: type, x_name: str) -> TrialKind:
    start, resume = _lm_runner(which)
    return TrialKind(
        command=f"lm-{which}",
        config_class=config_class,
        x_name=x_name,
        score_name="plain_gold",  # held-out gold of one plain sample per prompt
        reserved={"seed": "seeds come from --seeds"},
        point=_lm_point(x_name),
        start=start,
        resume=resume,
        prepare=lambda config, seed, run_dir: config.replace(seed=seed),
    )


def _lm_kinds() -> dict[str, TrialKind]:
    from forethought.lm.grpo.config import GRPOConfig
    from forethought.lm.selftrain.config import SelfTrainConfig

    return {
        "lm-grpo": _lm_kind("grpo", GRPOConfig, "step"),
        "lm-selftrain": _lm_kind("selftrain", SelfTrainConfig, "iteration"),
    }


COMMANDS = ("train", "lm-grpo", "lm-selftrain")


def get_kind(command: str) -> TrialKind:
    """The kind behind a sweep's --command (the lm kinds import their configs on demand)."""
    return TRAIN if command == "train" else _lm_kinds()[command]
