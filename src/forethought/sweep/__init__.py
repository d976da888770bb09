"""`forethought sweep`: a grid (or list) of `forethought train`, `lm grpo` or `lm selftrain`
configurations x seeds, run in a local process pool or as Ray Tune trials, restartable after a
kill, aggregated over seeds.

SWEEP_DIR/
  sweep.json          the expanded trials (each one's full config), written before any runs
  trials/NAME/        each trial's ordinary run directory (resumable on its own)
  finished/NAME.json  a finished trial's record (final metrics, every evaluation point)
  failed/NAME.txt     why a trial stopped, if it did
  events.jsonl        every start, continuation, finish and skip, with the process id
  results.json        machine, every trial's config and metrics, per-group IQM/median/mean + CIs
  results.png         the score against progress (env steps, GRPO steps, iterations) per group
  .lock               held by the driver, so two drivers never run one sweep

What can be swept (kinds.py), plan (plan.py), run (execute.py), aggregate (results.py); this
module is the driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from forethought.errors import ConfigError, ForethoughtError
from forethought.storage import RunLock, read_json, write_json
from forethought.sweep import execute, plan, results
from forethought.sweep.kinds import get_kind


@dataclass(frozen=True)
class SweepArgs:
    """Run `forethought train` (or `lm grpo`, `lm selftrain`) configurations x seeds as one sweep: every trial is an ordinary run directory under --out, run in a process pool (default) or on Ray Tune; a killed sweep continues with --resume; results.json and results.png aggregate the final evaluation over seeds. Example: forethought sweep --grid algo=mpc,sac --seeds 0,1,2 --out runs/sweep --base-args="--env Pendulum-v1 --steps 1000" (with =, as the value starts with dashes)"""

    command: Literal["train", "lm-grpo", "lm-selftrain"] = "train"
    """What each trial runs: forethought train, lm grpo or lm selftrain (its options go in --base-args and --grid; lm trials use one torch thread each)."""
    grid: tuple[str, ...] = ()
    """Settings to vary, each KEY=V1,V2 with KEY an option of the command without its dashes (algo, episodes, planning.horizon; lr, steps for lm grpo); several keys give their product."""
    seeds: str = "0"
    """Comma-separated seeds (e.g. 0,1,2); every configuration runs once per seed."""
    base_args: str = ""
    """Options of the command every trial shares, as one string after = (--base-args="--env Pendulum-v1 --episodes 5"); trials get --quiet and their own run directory."""
    spec: Path | None = None
    """A TOML file with command, base_args, seeds, [grid] and [[variants]] (a list of settings, one group each), instead of --command/--grid/--seeds/--base-args."""
    out: Path = Path("runs/sweep")
    """Sweep directory to create: sweep.json, results.json, results.png, and trials/NAME/ per trial."""
    resume: Path | None = None
    """Continue the killed sweep in this directory: finished trials are kept, interrupted ones continue from their checkpoints, the others start."""
    backend: Literal["pool", "ray"] = "pool"
    """pool: a local process pool of --workers. ray: Ray Tune trials (pip install "forethought[sweep]"), a local Ray unless --address."""
    workers: int = 2
    """Trials run at once by the process pool (each with the trial's --threads, 1 by default)."""
    address: str | None = None
    """Ray cluster to join (auto on a cluster node, or ray://HEAD:10001); default: start a local Ray on this machine."""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial (a local Ray uses all of this machine's CPUs)."""
    gpus_per_trial: float = 0.0
    """GPUs (or a fraction of one) Ray reserves for each trial; add --device cuda to --base-args."""


@dataclass
class SweepResult:
    sweep_dir: Path
    results_path: Path
    plot_path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # this invocation's wall-clock time


def _check(args: SweepArgs) -> None:
    if args.workers < 1:
        raise ConfigError("workers", "must be at least 1")
    if args.cpus_per_trial < 0 or args.gpus_per_trial < 0:
        raise ConfigError("cpus_per_trial", "resources per trial cannot be negative")
    if args.backend == "ray":
        execute.require_ray()
    planned = (args.spec is not None or args.grid or args.seeds != "0" or args.base_args
               or args.command != SweepArgs.command)  # fmt: skip
    if args.resume is not None and (planned or args.out != SweepArgs.out):
        raise ConfigError(
            "resume",
            "the sweep keeps the trials it started with: give only --workers, --backend, "
            "--address, --cpus-per-trial, --gpus-per-trial next to --resume",
        )
    if args.spec is not None and (
        args.grid or args.seeds != "0" or args.base_args or args.command != SweepArgs.command
    ):
        raise ConfigError(
            "spec", "give either --spec or --command/--grid/--seeds/--base-args, not both"
        )


def _plan(args: SweepArgs) -> plan.Plan:
    if args.spec is not None:
        command, base_args, seeds, grid, variants = plan.read_spec(args.spec)
    else:
        command, base_args, seeds = args.command, args.base_args, plan.parse_seeds(args.seeds)
        grid, variants = plan.parse_grid(args.grid), []
    return plan.Plan(base_args, seeds, plan.groups_of(grid, variants), command)


def _open(args: SweepArgs) -> tuple[Path, list[dict[str, Any]], RunLock]:
    """The sweep directory, its trials and the driver's lock: a new sweep's sweep.json is
    written before anything runs; --resume reads it back."""
    if args.resume is not None:
        sweep_dir = Path(args.resume)
        if not (sweep_dir / "sweep.json").is_file():
            raise ConfigError("resume", f"{sweep_dir} is not a sweep directory (no sweep.json)")
        lock = RunLock(sweep_dir).acquire()
        saved = read_json(sweep_dir / "sweep.json", "the sweep's trials")
        if not isinstance(saved, dict) or not isinstance(saved.get("trials"), list):
            lock.release()
            raise ConfigError("resume", f"{sweep_dir}/sweep.json does not hold a sweep's trials")
        return sweep_dir, saved["trials"], lock
    sweep_dir = Path(args.out)
    trials = plan.expand(_plan(args), sweep_dir)  # every trial valid before a file is written
    if (sweep_dir / "sweep.json").exists():
        raise ConfigError(
            "out", f"{sweep_dir} already holds a sweep; continue it with --resume {sweep_dir}"
        )
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError("out", f"{sweep_dir} is a file, not a directory; choose another --out")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(sweep_dir).acquire()
    write_json(sweep_dir / "sweep.json", {"version": 1, "trials": trials})
    return sweep_dir, trials, lock


def run_sweep(args: SweepArgs, console: Console | None = None) -> SweepResult:
    """Run (or continue) a sweep to its end and write results.json and results.png."""
    console = console or Console(quiet=True)
    _check(args)
    start = time.perf_counter()
    sweep_dir, trials, lock = _open(args)
    try:
        todo = _announce(sweep_dir, trials, args, console)
        finished = len(trials) - len(todo)

        def on_done(trial: dict[str, Any]) -> None:
            nonlocal finished
            finished += 1
            _report_trial(sweep_dir, trial, f"[{finished}/{len(trials)}]", console)

        _run(sweep_dir, todo, args, on_done)
        result = _write_results(sweep_dir, trials, args, time.perf_counter() - start)
    finally:
        lock.release()
    _print_summary(result, console)
    _raise_if_unfinished(sweep_dir, trials, f"run forethought sweep --resume {sweep_dir}")
    return result


def _run(sweep_dir: Path, todo: list[dict[str, Any]], args: SweepArgs, on_done) -> None:
    """The trials in `todo` on the chosen backend; `on_done(trial)` as each one ends."""
    if args.backend == "ray":
        options = {k: getattr(args, k) for k in ("address", "cpus_per_trial", "gpus_per_trial")}
        execute.run_ray(sweep_dir, todo, options, on_done)
    else:
        execute.run_pool(sweep_dir, todo, args.workers, on_done)


def _raise_if_unfinished(sweep_dir: Path, trials: list[dict[str, Any]], then: str) -> None:
    failed = [t["name"] for t in trials if not execute.finished_path(sweep_dir, t["name"]).exists()]
    if failed:
        raise ForethoughtError(
            f"{len(failed)} of {len(trials)} trials did not finish ({', '.join(failed[:3])}"
            f"{', ...' if len(failed) > 3 else ''}; why: {sweep_dir}/failed/); fix the cause and "
            f"{then}",
        )


def run_configs(
    sweep_dir: Path,
    configs: dict[str, Any],
    options: SweepArgs = SweepArgs(),  # frozen; only backend, workers and Ray's are read
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Named `forethought train` configurations as trials of the sweep in `sweep_dir`, which
    grows with each call: a scripted experiment (every benchmark) calls it with the runs it
    needs, and gets each trial's finished record (`on_done(record)` as each one finishes).

    A name already in the sweep must come with the same config: its finished trial is reused
    and an interrupted one continues from its checkpoint. Each config's seed is kept and its
    run directory set to SWEEP_DIR/trials/NAME."""
    sweep_dir, start = Path(sweep_dir), time.perf_counter()
    _check(options)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(sweep_dir).acquire()
    try:
        trials = _merge_trials(sweep_dir, configs)
        todo = [t for t in trials if not execute.is_finished(sweep_dir, t)]

        def done(trial: dict[str, Any]) -> None:
            path = execute.finished_path(sweep_dir, trial["name"])
            if on_done is not None and path.exists():
                on_done(read_json(path, "a finished trial's record"))

        for trial in trials:
            if trial not in todo:
                done(trial)
        _run(sweep_dir, todo, options, done)
        _write_results(sweep_dir, trials, options, time.perf_counter() - start)
    finally:
        lock.release()
    _raise_if_unfinished(sweep_dir, trials, "run the same command again")
    return {t["name"]: read_json(execute.finished_path(sweep_dir, t["name"]), "a record")
            for t in trials}  # fmt: skip


def _saved_config(kind, trial: dict[str, Any]) -> dict[str, Any]:
    """A trial's saved config as today's code reads it: a setting added since it was saved
    takes its default, so it does not count as a change (the run directory does the same)."""
    return kind.to_dict(kind.from_dict(trial["config"], "sweep.json"))


def _merge_trials(sweep_dir: Path, configs: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials for `configs`, added to sweep.json; a name already there with another config
    is refused (its run directory holds a different experiment)."""
    kind = get_kind("train")
    path = sweep_dir / "sweep.json"
    saved = read_json(path, "the sweep's trials")["trials"] if path.exists() else []
    known = {t["name"]: t for t in saved}
    trials = []
    for name, config in configs.items():
        group = name.rsplit("-seed", 1)[0]
        trial = plan.make_trial(
            kind, config, name, group, config.seed, {}, sweep_dir / "trials" / name
        )
        if name in known and _saved_config(kind, known[name]) != trial["config"]:
            raise ConfigError(
                "runs",
                f"{sweep_dir}/trials/{name} was run with other settings; delete it (and "
                f"finished/{name}.json) or keep the runs elsewhere",
            )
        known.setdefault(name, trial)
        trials.append(known[name])
    write_json(path, {"version": 1, "trials": list(known.values())})
    return trials


def _announce(sweep_dir: Path, trials, args: SweepArgs, console: Console) -> list[dict]:
    """Log the finished trials as skipped and say what will run where; the trials to run."""
    todo = []
    for trial in trials:
        if execute.finished_path(sweep_dir, trial["name"]).exists():
            execute.log_event(sweep_dir, trial["name"], "skipped")
        else:
            todo.append(trial)
    where = (
        f"Ray Tune ({args.address or 'local Ray'}, {args.cpus_per_trial:g} CPU per trial)"
        if args.backend == "ray"
        else f"a process pool of {args.workers} worker{'s' * (args.workers > 1)}"
    )
    console.print(
        f"sweep {sweep_dir}: {len(trials)} trials, {len(trials) - len(todo)} already finished, "
        f"{len(todo)} to run on {where}",
        soft_wrap=True,
    )
    return todo


def _report_trial(sweep_dir: Path, trial: dict[str, Any], count: str, console: Console) -> None:
    done = execute.finished_path(sweep_dir, trial["name"])
    if done.exists():
        record = read_json(done, "a finished trial's record")
        final = record["final_score"]
        console.print(
            f"{count} {trial['name']}: final {record['score_name']} "
            f"{'n/a' if final is None else f'{final:.4g}'} at {record['x_name']} "
            f"{record['progress']:g} "
            f"({record['seconds']:.0f} s)",
            soft_wrap=True,
        )
        return
    why = execute.failed_path(sweep_dir, trial["name"])
    reason = why.read_text().strip().splitlines()[-1] if why.exists() else "its process was killed"
    console.print(f"{count} {trial['name']} failed: {reason}", markup=False, soft_wrap=True)


def _write_results(sweep_dir: Path, trials, args: SweepArgs, seconds: float) -> SweepResult:
    records = []
    for trial in trials:
        done = execute.finished_path(sweep_dir, trial["name"])
        if done.exists():
            records.append(
                {**read_json(done, "a finished trial's record"), "config": trial["config"]}
            )
    document = {
        "sweep_dir": str(sweep_dir),
        "backend": args.backend,
        "workers": args.workers if args.backend == "pool" else None,
        "seconds": seconds,  # the last invocation's wall-clock time
        "machine": results.machine_info(),
        "trials": records,
        "unfinished": [t["name"] for t in trials if t["name"] not in {r["name"] for r in records}],
        "groups": results.summarise(records),
    }
    path = sweep_dir / "results.json"
    write_json(path, document)
    plot_path = results.plot(
        records, sweep_dir / "results.png", f"{sweep_dir.name}: mean over seeds, shaded min to max"
    )
    return SweepResult(sweep_dir, path, plot_path, records, seconds)


def _print_summary(result: SweepResult, console: Console) -> None:
    groups = results.summarise(result.records)
    if not any(entry.get("aggregate") for entry in groups.values()):
        console.print(f"no trial finished; results: {result.results_path}")
        return
    name = result.records[0]["score_name"]
    table = Table(title=f"final {name} over seeds (95% bootstrap CI)")
    for column in ("group", "seeds", "IQM", "median", "mean"):
        table.add_column(column)
    for name, entry in groups.items():
        agg = entry.get("aggregate")
        if agg is None:
            continue
        cells = [f"{agg[k]:.4g} [{agg[k + '_ci95'][0]:.4g}, {agg[k + '_ci95'][1]:.4g}]"
                 for k in ("iqm", "median", "mean")]  # fmt: skip
        table.add_row(name, str(agg["n"]), *cells)
    console.print(table)
    console.print(f"results: {result.results_path}\nplot: {result.plot_path}")
