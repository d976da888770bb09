"""One entry point for every method: `train(config)` and `resume(run_dir)` pick the model-based
loop (`forethought.loop`) or a model-free baseline (`forethought.agents.model_free`) from
`config.algo`, so the CLI and the benchmarks treat them alike."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from forethought.config import SB3_DRIVEN, TrainConfig
from forethought.loop import RunResult
from forethought.runs import RunDir


def train(config: TrainConfig, console: Console | None = None) -> RunResult:
    if config.algo in SB3_DRIVEN:
        from forethought.agents import model_free

        return model_free.train(config, console)
    from forethought import loop

    return loop.train(config, console)


def resume(run_dir: Path, console: Console | None = None) -> RunResult:
    directory, config = RunDir.open(run_dir)
    if config.algo in SB3_DRIVEN:
        from forethought.agents import model_free

        config.validate()
        return model_free.resume(directory, config, console)
    from forethought import loop

    return loop.resume(run_dir, console)
