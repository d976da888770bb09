"""How the benchmarks run `forethought train`: every run is a trial of the benchmark's own sweep
(`forethought.sweep.run_configs`, one sweep directory per benchmark under benchmarks/.runs/).

So every benchmark takes --workers N (N runs at once, one torch thread each) and --backend ray
[--address HEAD] (the same runs as Ray Tune trials, on this machine or a cluster); a finished run
is reused and a killed one continues from its own checkpoint when the benchmark starts again.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from forethought.config import TrainConfig
from forethought.storage import RunDirBusy, read_metrics
from forethought.sweep import SweepArgs, run_configs

Rows = list[dict]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the runs go (forethought sweep)")
    group.add_argument(
        "--workers", type=int, default=1, help="runs at once in a process pool (default 1)"
    )
    group.add_argument(
        "--backend", choices=("pool", "ray"), default="pool", help="default pool; ray: Ray Tune"
    )
    group.add_argument(
        "--address", default=None, help="Ray cluster to join with --backend ray (default: local)"
    )
    group.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="with --backend ray (default 1)"
    )


def sweep_options(args: argparse.Namespace | None) -> SweepArgs:
    if args is None:
        return SweepArgs(workers=1)
    return SweepArgs(
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
    )


def run_all(
    runs: Path,
    configs: dict[str, TrainConfig],
    args: argparse.Namespace | None = None,
    on_done: Callable[[str, Rows, float], None] | None = None,
) -> dict[str, tuple[Rows, float]]:
    """Run (or reuse) every named config as a trial of the sweep in `runs`; each run's metrics
    rows and the seconds its last attempt took, by name (`on_done` as each one finishes)."""

    def done(record: dict) -> None:
        if on_done is not None:
            on_done(record["name"], rows_of(record), record["seconds"])

    try:
        records = run_configs(runs, configs, sweep_options(args), done)
    except RunDirBusy as busy:  # another benchmark holds the sweep: one line, not a traceback
        hint = " (or give this one its own --runs)" if hasattr(args, "runs") else ""
        raise SystemExit(f"error: {busy}{hint}") from None
    return {name: (rows_of(record), record["seconds"]) for name, record in records.items()}


def run_once(config: TrainConfig) -> tuple[Rows, float]:
    """One config as the trial named after its --out, in the sweep of --out's parent."""
    out = Path(config.out)
    return run_all(out.parent, {out.name: config})[out.name]


def rows_of(record: dict) -> Rows:
    return read_metrics(Path(record["run_dir"]) / "metrics.jsonl")
