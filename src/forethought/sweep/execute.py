"""Running a sweep's trials: one trial (skip, resume or start its run directory), a local
process pool, or Ray Tune.

Every trial is an ordinary run directory, locked while a process writes it. A trial is done
when `finished/NAME.json` exists: it is written atomically by the process that ran the trial,
after the run's last checkpoint, so a killed sweep restarted with --resume skips exactly the
finished trials; an unfinished trial whose directory exists is continued with
`trainers.resume` from its own checkpoint (a run that ended just before its marker was written
resumes to the same end without running anything again). `events.jsonl` records each start
(train), continuation (resume), finish and skip with the process id, so a test can check that
no trial ran twice.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from forethought.errors import ConfigError, ForethoughtError
from forethought.storage import atomic_write_text, read_json, write_json
from forethought.sweep.kinds import get_kind

Trial = dict[str, Any]
OnDone = Callable[[Trial], None]


def finished_path(sweep_dir: Path, name: str) -> Path:
    return Path(sweep_dir) / "finished" / f"{name}.json"


def is_finished(sweep_dir: Path, trial: Trial) -> bool:
    """True when the trial's record is in finished/ and its run directory is still there; a
    record whose run directory was deleted (to run it again) is dropped."""
    done = finished_path(sweep_dir, trial["name"])
    if not done.exists():
        return False
    if Path(read_json(done, "a finished trial's record")["run_dir"]).is_dir():
        return True
    log_event(sweep_dir, trial["name"], "run directory gone: run again")
    done.unlink()
    return False


def failed_path(sweep_dir: Path, name: str) -> Path:
    return Path(sweep_dir) / "failed" / f"{name}.txt"


def log_event(sweep_dir: Path, name: str, event: str) -> None:
    """One line appended to events.jsonl (a single short write: whole lines, any writer)."""
    line = json.dumps({"trial": name, "event": event, "pid": os.getpid(), "time": time.time()})
    fd = os.open(Path(sweep_dir) / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_events(sweep_dir: Path) -> list[dict[str, Any]]:
    path = Path(sweep_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_trial(sweep_dir: Path, trial: Trial) -> dict[str, Any]:
    """Run one trial to its end (skip it if finished, continue it if interrupted) and write its
    record to finished/NAME.json; returns the record."""
    name, done = trial["name"], finished_path(sweep_dir, trial["name"])
    if is_finished(sweep_dir, trial):
        return read_json(done, "a finished trial's record")
    kind = get_kind(trial.get("command", "train"))
    config = kind.from_dict(trial["config"], source=f"{sweep_dir}/sweep.json")
    run_dir = Path(trial.get("run_dir") or trial["config"]["out"])
    start, cpu = time.perf_counter(), time.process_time()
    if (run_dir / "config.json").exists():
        log_event(sweep_dir, name, "resume")
        rows = kind.resume(run_dir)
    else:
        log_event(sweep_dir, name, "train")
        rows = kind.start(config, run_dir)
    points = kind.curve(rows)
    record = {
        **{k: trial[k] for k in ("name", "group", "seed", "settings")},
        "command": kind.command,
        "run_dir": str(run_dir),
        "score_name": kind.score_name,
        "x_name": kind.x_name,
        "final_score": final_score(points),
        "progress": points["x"][-1] if points["x"] else 0,
        "evaluations": points,
        "seconds": time.perf_counter() - start,  # this attempt's time (less when resumed)
        "cpu_seconds": time.process_time() - cpu,  # its CPU time (wall >> CPU: a busy machine)
    }
    done.parent.mkdir(exist_ok=True)
    write_json(done, record)
    log_event(sweep_dir, name, "finished")
    return record


# -- the process pool ----------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """Make this worker end when the sweep's driver does, even on SIGKILL: the kernel's
    parent-death signal on Linux, and a watcher thread everywhere."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(sweep_dir: str, trial: Trial, parent: int) -> None:
    _die_with_parent(parent)
    try:
        run_trial(Path(sweep_dir), trial)
    except BaseException as exc:
        record_failure(Path(sweep_dir), trial["name"], exc)
        sys.exit(3)


def record_failure(sweep_dir: Path, name: str, exc: BaseException) -> None:
    """What stopped a trial, for the driver to report in one line (a traceback for a bug)."""
    message = str(exc) if isinstance(exc, ForethoughtError) else traceback.format_exc()
    path = failed_path(sweep_dir, name)
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, f"{type(exc).__name__}: {message}".strip() + "\n")


def run_pool(sweep_dir: Path, trials: list[Trial], workers: int, on_done: OnDone) -> None:
    """Run `trials` in up to `workers` processes at once; `on_done(trial)` as each one ends."""
    # spawn, not fork: a fresh interpreter per trial (about 2 s of imports), never a copy of a
    # process whose torch thread pools may already be running
    context = multiprocessing.get_context("spawn")
    pending, running = list(trials), {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                trial = pending.pop(0)
                process = context.Process(
                    target=_worker, args=(str(sweep_dir), trial, os.getpid()), daemon=True
                )
                process.start()
                running[process.sentinel] = (process, trial)
            for sentinel in wait(list(running)):
                process, trial = running.pop(sentinel)
                process.join()
                on_done(trial)
    finally:  # the driver stops (Ctrl-C, an error): so do its workers
        for process, _ in running.values():
            process.kill()
            process.join()


# -- Ray Tune ------------------------------------------------------------------------------------
def require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "backend",
            'ray needs Ray Tune, which is not installed: pip install "forethought[sweep]" '
            "(or use --backend pool)",
        )


def _ray_trial(params: dict[str, Any], sweep_dir: str, by_name: dict[str, Trial]) -> None:
    from ray import tune

    try:
        record = run_trial(Path(sweep_dir), by_name[params["trial"]])
    except BaseException as exc:
        record_failure(Path(sweep_dir), params["trial"], exc)
        raise
    report = tune.report if hasattr(tune, "RunConfig") else __import__("ray.train").train.report
    report({"final_score": record["final_score"], "progress": record["progress"]})


def run_ray(sweep_dir: Path, trials: list[Trial], ray_options: dict[str, Any], on_done: OnDone):
    """The trials as Ray Tune trials: local Ray unless `address`, resources per trial."""
    require_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune status tables
    import ray
    from ray import tune

    logging.getLogger("ray").setLevel(logging.WARNING)

    by_name = {t["name"]: t for t in trials}

    class Reporter(tune.Callback):
        """Calls `on_done` in the driver; Tune saves its copy of the run config without it."""

        def __getstate__(self):
            return {}

        def on_trial_complete(self, iteration, trials, trial, **info):
            if hasattr(self, "on_done"):
                self.on_done(by_name[trial.config["trial"]])

        on_trial_error = on_trial_complete

    reporter = Reporter()
    reporter.on_done = on_done

    started = not ray.is_initialized()  # a caller may have started Ray itself
    if started:
        address = ray_options["address"]
        ray.init(
            **({"address": address} if address else {}),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        trainable = tune.with_resources(
            partial(_ray_trial, sweep_dir=str(Path(sweep_dir).resolve()), by_name=by_name),
            {"cpu": ray_options["cpus_per_trial"], "gpu": ray_options["gpus_per_trial"]},
        )
        run_config_cls = getattr(tune, "RunConfig", None) or ray.train.RunConfig
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(list(by_name))},
            run_config=run_config_cls(
                name=f"tune-{int(time.time())}",
                storage_path=str(Path(sweep_dir).resolve() / "ray"),
                callbacks=[reporter],
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()  # stops a local Ray; only disconnects from a cluster


def final_score(points: dict[str, list[float]]) -> float | None:
    """A trial's final score: `last_step_mean` of its evaluation points (None without any)."""
    return last_step_mean(points["x"], points["y"]) if points["y"] else None


def last_step_mean(steps: Sequence[float], scores: Sequence[float]) -> float:
    """The mean of the scores at the last step. A run whose evaluation schedule ends on its
    last step can evaluate the final agent twice; a planner acts at random, so the reads
    differ, and the later or the higher one alone would be a noisier or a biased estimate."""
    last = [y for x, y in zip(steps, scores, strict=True) if x == steps[-1]]
    return float(sum(last) / len(last))
