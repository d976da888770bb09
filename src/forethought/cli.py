"""The `forethought` command.

    forethought demo                          the embedded default: Pendulum-v1, a few episodes
    forethought train --env Pendulum-v1 ...   a model-based control run (see --help)
    forethought train --resume RUN_DIR        continue a killed run
    forethought evaluate RUN_DIR              an MBPO run's policy, MPC, guided MPC, switching
    forethought lm ...                        the language track (its own --help)

Every option comes from the typed config dataclasses (forethought.config); errors a user can
cause are printed as one line that says what to change, never as a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.text import Text

from forethought.config import TrainConfig
from forethought.errors import ForethoughtError
from forethought.evaluation.controllers import EvaluateArgs
from forethought.evaluation.diagnose import DiagnoseArgs
from forethought.models.fitting import FitConfig
from forethought.planners.base import PlannerConfig


@dataclass(frozen=True)
class DemoArgs:
    """The embedded default: iCEM MPC learns to swing up Pendulum-v1 from one random episode
    plus three planned ones (about two minutes on 2 cores), then prints the results table and
    the path of the learning-curve plot."""

    seed: int = 0
    """Random seed."""
    out: Path = Path("runs/demo")
    """Run directory (a numbered sibling is used if it exists)."""
    quiet: bool = False
    """No progress bar or table."""


def demo_config(args: DemoArgs) -> TrainConfig:
    out = args.out
    n = 1
    while (out / "config.json").exists():
        n += 1
        out = args.out.with_name(f"{args.out.name}-{n}")
    return TrainConfig(
        env="Pendulum-v1",
        planner="icem",
        episodes=4,
        warmup_episodes=1,
        seed=args.seed,
        out=out,
        eval_episodes=5,
        quiet=args.quiet,
        fit=FitConfig(),
        planning=PlannerConfig(),
    )


def _run_train(config: TrainConfig, console: Console) -> int:
    from forethought.training import resume, train

    if config.resume is not None:
        resume(config.resume, console)
    else:
        train(config, console)
    return 0


def _run_lm(argv: list[str], console: Console) -> int:
    from forethought.lm.cli import main as lm_main

    return lm_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    try:
        if argv and argv[0] == "lm":
            return _run_lm(argv[1:], console)
        command = tyro.extras.subcommand_cli_from_dict(
            {
                "train": TrainConfig,
                "demo": DemoArgs,
                "diagnose": DiagnoseArgs,
                "evaluate": EvaluateArgs,
            },
            args=argv,
            prog="forethought",
            description="Model-based reinforcement learning: learn a model, look ahead with it, act. "
            "The language track is under `forethought lm --help`.",
        )
        if isinstance(command, DiagnoseArgs):
            from forethought.evaluation.diagnose import diagnose

            result = diagnose(command)
            k = len(result.horizons) - 1
            console.print(
                f"open-loop ensemble error grows from {result.ensemble_rmse[0]:.4f} at k=1 to "
                f"{result.ensemble_rmse[k]:.4f} at k={result.horizons[k]} (normalised RMSE); "
                f"disagreement from {result.disagreement[0]:.4f} to {result.disagreement[k]:.4f}"
            )
            console.print(f"plot: {result.plot_path}\njson: {result.json_path}")
            return 0
        if isinstance(command, EvaluateArgs):
            from forethought.evaluation.controllers import evaluate_controllers

            evaluate_controllers(command, console)
            return 0
        if isinstance(command, DemoArgs):
            config = demo_config(command)
            console.print(
                f"[bold]forethought demo[/]: {config.env}, planner {config.planner}, "
                f"{config.episodes} episodes, run directory {config.out}"
            )
            return _run_train(config, console)
        return _run_train(command, console)
    except ForethoughtError as exc:
        # Text, not markup: messages quote user values such as "[nan, 0.0]" verbatim.
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; continue with `forethought train --resume RUN_DIR`")
        return 130


if __name__ == "__main__":
    sys.exit(main())
