"""The training loops, behind one entry point: `train(config)` starts a run and `resume(run_dir)`
continues one, for every `--algo`:

    mpc               trainers/pets.py   collect, fit, plan, evaluate (model-based control;
                                         trajectory optimisers, or tree search for Discrete)
    mbpo              trainers/sb3.py    SB3's SAC on real and imagined data (trainers/mbpo.py)
    sac, td3, ppo,    trainers/sb3.py    the model-free baselines, untouched
      dqn

Each loop module has `check(config)` (what can fail before a directory exists), `start(directory,
config, console)` and `resume(directory, config, console)`. The run directory is locked while
the loop runs, so a second writer is refused.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from rich.console import Console

from forethought.config import SB3_DRIVEN, TrainConfig
from forethought.trainers.run_dir import RunDir, RunResult

__all__ = ["RunResult", "resume", "train"]


def _loop(config: TrainConfig) -> ModuleType:
    if config.algo in SB3_DRIVEN:
        from forethought.trainers import sb3

        return sb3
    from forethought.trainers import pets

    return pets


def train(config: TrainConfig, console: Console | None = None) -> RunResult:
    """Start a new run from `config` and carry it to the end."""
    config.validate()
    loop = _loop(config)
    loop.check(config)
    directory = RunDir.create(config)
    try:
        return loop.start(directory, config, console)
    finally:
        directory.close()


def resume(
    run_dir: Path, console: Console | None = None, given: TrainConfig | None = None
) -> RunResult:
    """Continue the run in `run_dir` with its saved config; `given` (the command line's config)
    may change the settings `TrainConfig.resumed` allows, such as a longer --episodes."""
    directory, config = RunDir.open(run_dir)
    try:
        if given is not None:
            updated = config.resumed(given)
            if updated != config:
                updated.validate()
                directory.save_config(updated.to_dict())
            config = updated
        config.validate()
        return _loop(config).resume(directory, config, console)
    finally:
        directory.close()
