"""The `forethought` command.

    forethought demo                          the embedded default: Pendulum-v1, a few episodes
    forethought train --env Pendulum-v1 ...   a model-based control run (see --help)
    forethought train --resume RUN_DIR        continue a killed run
    forethought evaluate RUN_DIR              an MBPO run's policy, MPC, guided MPC, switching
    forethought offline --dataset NAME ...    learn from a logged dataset alone (mopo, morel, bc)
    forethought ope --dataset NAME --policy P  estimate policies' returns from the logs alone
    forethought dataset ...                   logged datasets (Minari): collect, make-tiers, list
    forethought lm ...                        the language track (its own --help)

Every option comes from the typed config dataclasses (forethought.config); errors a user can
cause are printed as one line that says what to change, never as a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import tyro
from rich.console import Console
from rich.text import Text

from forethought.config import TrainConfig
from forethought.errors import ForethoughtError
from forethought.models.fitting import FitConfig
from forethought.planners.base import PlannerConfig
from forethought.sweep import SweepArgs
from forethought.tools.diagnose import DiagnoseArgs
from forethought.tools.evaluate import EvaluateArgs
from forethought.tools.explain import ExplainArgs
from forethought.tools.ope import OPEArgs
from forethought.tools.report import ReportArgs
from forethought.trainers.offline_config import OfflineConfig


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
    from forethought.trainers import resume, train

    if config.resume is not None:
        resume(config.resume, console, given=config)
    else:
        train(config, console)
    return 0


def _run_diagnose(command: DiagnoseArgs, console: Console) -> int:
    from forethought.tools.diagnose import diagnose

    result = diagnose(command)
    k = len(result.horizons) - 1
    console.print(
        f"open-loop ensemble error grows from {result.ensemble_rmse[0]:.4f} at k=1 to "
        f"{result.ensemble_rmse[k]:.4f} at k={result.horizons[k]} (normalised RMSE); "
        f"disagreement from {result.disagreement[0]:.4f} to {result.disagreement[k]:.4f}"
    )
    console.print(f"plot: {result.plot_path}\njson: {result.json_path}")
    return 0


def _run_evaluate(command: EvaluateArgs, console: Console) -> int:
    from forethought.tools.evaluate import evaluate_controllers

    evaluate_controllers(command, console)
    return 0


def _run_explain(command: ExplainArgs, console: Console) -> int:
    from forethought.tools.explain import explain

    result = explain(command)
    console.print(result.summary, soft_wrap=True)
    console.print(f"plot: {result.plot_path}\njson: {result.json_path}")
    return 0


def _run_report(command: ReportArgs, console: Console) -> int:
    from forethought.tools.report import report

    console.print(f"report: {report(command)}")
    return 0


def _run_sweep(command: SweepArgs, console: Console) -> int:
    from forethought.sweep import run_sweep

    run_sweep(command, console)
    return 0


def _run_offline(command: OfflineConfig, console: Console) -> int:
    from forethought.trainers.offline import train_offline

    train_offline(command, console)
    return 0


def _run_ope(command: OPEArgs, console: Console) -> int:
    from forethought.tools.ope import run_ope

    run_ope(command, console)
    return 0


def _run_demo(command: DemoArgs, console: Console) -> int:
    config = demo_config(command)
    console.print(
        f"[bold]forethought demo[/]: {config.env}, planner {config.planner}, "
        f"{config.episode_limit} episodes, run directory {config.out}"
    )
    return _run_train(config, console)


@dataclass(frozen=True)
class LanguageArgs:
    """The language track: search over language-model outputs under an exactly counted budget, and self-training (see `forethought lm --help`)."""


@dataclass(frozen=True)
class DatasetArgs:
    """Logged datasets in Minari's format, made locally: collect, make-tiers, list (see `forethought dataset --help`)."""


def _run_dataset(argv: list[str], console: Console) -> int:
    from forethought.tools.dataset import (
        CollectArgs,
        ListArgs,
        MakeTiersArgs,
        collect,
        list_datasets,
        make_tiers,
    )

    command = tyro.extras.subcommand_cli_from_dict(
        {"collect": CollectArgs, "make-tiers": MakeTiersArgs, "list": ListArgs},
        args=argv,
        prog="forethought dataset",
        description="Logged datasets in Minari's format, stored locally (MINARI_DATASETS_PATH, "
        "default ~/.minari/datasets); nothing is downloaded.",
    )
    if isinstance(command, CollectArgs):
        collect(command, console)
    elif isinstance(command, MakeTiersArgs):
        make_tiers(command, console)
    else:
        list_datasets(console)
    return 0


def _run_lm(argv: list[str], console: Console) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: no downloads
    from forethought.lm.cli import COMMANDS, DESCRIPTION, run

    command = tyro.extras.subcommand_cli_from_dict(
        COMMANDS, args=argv, prog="forethought lm", description=DESCRIPTION
    )
    return run(command, console)


COMMANDS = {
    "train": TrainConfig,
    "demo": DemoArgs,
    "diagnose": DiagnoseArgs,
    "evaluate": EvaluateArgs,
    "explain": ExplainArgs,
    "report": ReportArgs,
    "sweep": SweepArgs,
    "dataset": DatasetArgs,
    "offline": OfflineConfig,
    "ope": OPEArgs,
    "lm": LanguageArgs,
}
RUNNERS = {
    TrainConfig: _run_train,
    DemoArgs: _run_demo,
    DiagnoseArgs: _run_diagnose,
    EvaluateArgs: _run_evaluate,
    ExplainArgs: _run_explain,
    ReportArgs: _run_report,
    SweepArgs: _run_sweep,
    OfflineConfig: _run_offline,
    OPEArgs: _run_ope,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    if argv[:1] == ["--version"]:
        console.print(f"forethought {version('forethought')}")
        return 0
    try:
        if argv and argv[0] == "lm":
            return _run_lm(argv[1:], console)
        if argv and argv[0] == "dataset":
            return _run_dataset(argv[1:], console)
        command = tyro.extras.subcommand_cli_from_dict(
            COMMANDS,
            args=argv,
            prog="forethought",
            description="Model-based reinforcement learning: learn a model, look ahead with it, act. "
            "`forethought COMMAND --help` lists every option of a command with its default; "
            "`forethought --version` prints the version.",
        )
        return RUNNERS[type(command)](command, console)
    except ForethoughtError as exc:
        return _error(console, str(exc))
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(console, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        console.print(
            "interrupted; a training run continues with `forethought train --resume RUN_DIR`, "
            "a sweep with `forethought sweep --resume SWEEP_DIR`, a self-training run with "
            "`forethought lm selftrain --resume RUN_DIR`"
        )
        return 130


def _error(console: Console, message: str) -> int:
    # Text, not markup: messages quote user values such as "[nan, 0.0]" verbatim.
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
