"""`forethought sweep`: a process-pool sweep equals its runs made one by one; a driver killed
mid-sweep and resumed re-runs nothing and ends with the uninterrupted sweep's results; bad input
is one line; a 2-trial sweep on a local Ray with 2 CPUs (skipped without Ray)."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forethought.cli import main
from forethought.config import TrainConfig
from forethought.errors import ConfigError, ForethoughtError
from forethought.storage import RunLock
from forethought.sweep import SweepArgs, run_sweep
from forethought.sweep.execute import read_events
from forethought.sweep.kinds import TRAIN
from forethought.trainers import train
from helpers import TINY_ARGS, tiny_config

# Two groups whose trials take different times (so a kill finds one finished, one running).
GRID = ("episodes=2,4",)
BASE = shlex.join(TINY_ARGS)


def sweep_args(out: Path, **changes) -> SweepArgs:
    return SweepArgs(
        **{"grid": GRID, "seeds": "0,1", "base_args": BASE, "out": out, "workers": 2, **changes}
    )


def by_trial(sweep_dir: Path) -> dict:
    results = json.loads((sweep_dir / "results.json").read_text())
    return {r["name"]: r for r in results["trials"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("sweep") / "uninterrupted"
    run_sweep(sweep_args(sweep_dir))
    return sweep_dir


def test_pool_sweep_equals_the_same_runs_made_one_by_one(uninterrupted, tmp_path):
    trials = json.loads((uninterrupted / "sweep.json").read_text())["trials"]
    records = by_trial(uninterrupted)
    assert sorted(records) == sorted(t["name"] for t in trials) and len(trials) == 4
    for trial in trials:
        config = TrainConfig.from_dict({**trial["config"], "out": str(tmp_path / trial["name"])})
        alone = TRAIN.curve(train(config).history)
        assert records[trial["name"]]["evaluations"] == alone, trial["name"]
        assert records[trial["name"]]["config"] == trial["config"]
    results = json.loads((uninterrupted / "results.json").read_text())
    assert set(results["groups"]) == {"episodes=2", "episodes=4"}
    for group in results["groups"].values():
        aggregate = group["aggregate"]
        assert group["seeds"] == [0, 1] and aggregate["n"] == 2
        for stat in ("iqm", "median", "mean"):
            lo, hi = aggregate[f"{stat}_ci95"]
            assert lo <= aggregate[stat] <= hi
    assert results["machine"]["cores"] and (uninterrupted / "results.png").stat().st_size > 0


def _sweep_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "forethought.cli", "sweep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _kill_mid_sweep(sweep_dir: Path) -> tuple[set, set]:
    """Start the sweep's driver and SIGKILL it once one trial finished and another has a
    checkpoint but no result; the finished and the interrupted trials at that moment."""
    proc = _sweep_cli([*f"--grid {GRID[0]} --seeds 0,1 --workers 2".split(), "--out", str(sweep_dir),
                       f"--base-args={BASE}"])  # fmt: skip

    def state():
        finished = {p.stem for p in (sweep_dir / "finished").glob("*.json")}
        started = {p.parent.name for p in (sweep_dir / "trials").glob("*/checkpoint.pt")}
        return finished, started - finished

    deadline = time.time() + 120
    while not all(state()) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, f"the sweep ended before the kill: {proc.stdout.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return state()


def test_killed_driver_resumes_without_running_anything_twice(uninterrupted, tmp_path):
    sweep_dir = tmp_path / "killed"
    finished, interrupted = _kill_mid_sweep(sweep_dir)
    # The driver's workers die with it: within seconds no run directory has a writer.
    for trial in (sweep_dir / "trials").iterdir():
        for _ in range(100):
            try:
                RunLock(trial).acquire().release()
                break
            except Exception:
                time.sleep(0.1)
        else:
            pytest.fail(f"{trial} is still being written after the driver was killed")
    before = len(read_events(sweep_dir))
    assert main(["sweep", "--resume", str(sweep_dir), "--workers", "2"]) == 0
    events = read_events(sweep_dir)
    after = events[before:]
    for name in by_trial(uninterrupted):
        kinds = [e["event"] for e in events if e["trial"] == name]
        assert kinds.count("train") <= 1 and kinds.count("finished") == 1, (name, kinds)
        resumed = [e["event"] for e in after if e["trial"] == name]
        if name in finished:
            assert resumed == ["skipped"], (name, resumed)
        if name in interrupted:
            assert resumed == ["resume", "finished"], (name, resumed)
    ours, theirs = by_trial(sweep_dir), by_trial(uninterrupted)
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name]["evaluations"] == theirs[name]["evaluations"], name
    assert (
        json.loads((sweep_dir / "results.json").read_text())["groups"]
        == json.loads((uninterrupted / "results.json").read_text())["groups"]
    )


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("error: ") and "\n" not in out, out
    return out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--grid", "episodez=2,3"], "--grid: unknown setting 'episodez'"),
        (["--grid", "algo=mpc,xyz"], "--grid: algo='xyz': choose from mpc"),
        (["--seeds", ","], "--seeds: give at least one seed"),
        (["--seeds", "0,a"], "--seeds: '0,a' is not a comma-separated list of integers"),
        (["--grid", "seed=1,2"], "'seed' cannot be set (seeds come from --seeds)"),
        (["--base-args=--bogus 1"], "--base-args: '--bogus 1' is not valid for forethought train"),
    ],
    ids=["unknown key", "bad value", "empty seeds", "bad seeds", "seed in grid", "bad base args"],
)
def test_bad_input_is_one_line(argv, expected, tmp_path, capsys):
    assert expected in _one_line_error(["sweep", *argv, "--out", str(tmp_path / "s")], capsys)
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_spec_that_does_not_parse_is_one_line(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text("seeds = [0, 1\n[grid\n")
    out = _one_line_error(["sweep", "--spec", str(spec), "--out", str(tmp_path / "s")], capsys)
    assert f"--spec: {spec} is not valid TOML" in out


def test_resume_of_a_directory_without_a_sweep_is_one_line(tmp_path, capsys):
    out = _one_line_error(["sweep", "--resume", str(tmp_path)], capsys)
    assert out == f"error: --resume: {tmp_path} is not a sweep directory (no sweep.json)"


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    out = _one_line_error(["sweep", "--backend", "ray", "--out", str(tmp_path / "s")], capsys)
    assert 'pip install "forethought[sweep]"' in out
    assert not (tmp_path / "s").exists()


# Ray is the optional backend; the default tier runs the process pool (slow tier: ~25 s).
@pytest.mark.slow
def test_two_trial_sweep_on_a_local_ray_with_2_cpus(tmp_path):
    ray = pytest.importorskip(
        "ray", reason='Ray is not installed (pip install "forethought[sweep]"); the Ray backend '
        "is untested here"
    )  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sweep_dir = tmp_path / "ray"
        result = run_sweep(
            sweep_args(
                sweep_dir,
                grid=("planner=cem,random",),
                seeds="0",
                base_args=f"{BASE} --episodes 2",
                backend="ray",
            )
        )
    finally:
        ray.shutdown()
    assert len(result.records) == 2
    for record in result.records:
        run_dir = Path(record["run_dir"])
        assert run_dir.parent == sweep_dir / "trials"
        assert (run_dir / "checkpoint.pt").exists() and (run_dir / "metrics.jsonl").exists()
        assert len(record["evaluations"]["y"]) == 2  # episodes=2: two evaluations


def test_spec_with_grid_and_variants_expands_to_their_product(tmp_path):
    from forethought.sweep import plan

    spec = tmp_path / "sweep.toml"
    spec.write_text(
        'base_args = "--env Pendulum-v1 --eval-episodes 5"\nseeds = [0, 1]\n'
        '[grid]\n"planning.horizon" = [10, 20]\n'
        '[[variants]]\nalgo = "mpc"\nepisodes = 3\n[[variants]]\nalgo = "sac"\nsteps = 1000\n'
    )
    command, base, seeds, grid, variants = plan.read_spec(spec)
    assert command == "train"
    groups = plan.groups_of(grid, variants)
    trials = plan.expand(plan.Plan(base, seeds, groups, command), tmp_path / "s")
    assert len(trials) == 2 * 2 * 2
    first = trials[0]
    assert first["name"] == "algo-mpc_episodes-3_planning.horizon-10-seed0"
    assert first["group"] == "algo=mpc,episodes=3,planning.horizon=10"
    config = TrainConfig.from_dict(first["config"])
    assert (config.algo, config.episodes, config.planning.horizon, config.eval_episodes) == (
        "mpc",
        3,
        10,
        5,
    )
    assert config.out == tmp_path / "s" / "trials" / first["name"] and config.threads == 1
    assert {t["config"]["steps"] for t in trials if t["settings"]["algo"] == "sac"} == {1000}


def test_a_failed_trial_is_reported_kept_out_of_results_and_rerun_by_resume(tmp_path):
    """A trial that cannot run (a file sits where its run directory goes): the other finishes,
    the driver names it and says why, results.json lists it as unfinished; once the cause is
    gone, --resume runs only that trial."""
    sweep_dir = tmp_path / "s"
    blocker = sweep_dir / "trials" / "episodes-1-seed1"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a run directory")
    args = sweep_args(sweep_dir, grid=("episodes=1",), seeds="0,1")
    with pytest.raises(ForethoughtError, match=r"1 of 2 trials did not finish \(episodes-1-seed1;"):
        run_sweep(args)
    assert (sweep_dir / "failed" / "episodes-1-seed1.txt").read_text().strip()
    results = json.loads((sweep_dir / "results.json").read_text())
    assert results["unfinished"] == ["episodes-1-seed1"] and len(results["trials"]) == 1
    assert results["groups"]["episodes=1"]["seeds"] == [0]

    blocker.unlink()
    assert main(["sweep", "--resume", str(sweep_dir)]) == 0
    events = [(e["trial"], e["event"]) for e in read_events(sweep_dir)]
    assert events.count(("episodes-1-seed0", "train")) == 1  # the finished one is not re-run
    assert ("episodes-1-seed0", "skipped") in events
    assert events.count(("episodes-1-seed1", "finished")) == 1
    assert json.loads((sweep_dir / "results.json").read_text())["unfinished"] == []


def test_run_configs_grows_one_sweep_reuses_finished_runs_and_refuses_changed_ones(tmp_path):
    """The benchmarks' path (forethought.sweep.run_configs): named configs become trials of one
    sweep; a second call with one more run reuses the first (no new start) and a name that comes
    back with other settings is refused in one line."""
    from forethought.sweep import run_configs

    first = {"a-seed0": tiny_config(tmp_path / "ignored", episodes=1, seed=0)}
    seen = []
    records = run_configs(tmp_path / "s", first, on_done=lambda r: seen.append(r["name"]))
    assert seen == ["a-seed0"] and records["a-seed0"]["run_dir"] == str(
        tmp_path / "s" / "trials" / "a-seed0"
    )
    more = {**first, "b-seed1": tiny_config(tmp_path / "ignored", episodes=1, seed=1)}
    again = run_configs(tmp_path / "s", more, on_done=lambda r: seen.append(r["name"]))
    assert again["a-seed0"] == records["a-seed0"] and sorted(seen) == [
        "a-seed0",
        "a-seed0",
        "b-seed1",
    ]
    starts = [e["trial"] for e in read_events(tmp_path / "s") if e["event"] == "train"]
    assert starts == ["a-seed0", "b-seed1"]
    saved = json.loads((tmp_path / "s" / "sweep.json").read_text())["trials"]
    assert [t["name"] for t in saved] == ["a-seed0", "b-seed1"] and saved[1]["seed"] == 1
    changed = {"a-seed0": tiny_config(tmp_path / "ignored", episodes=2, seed=0)}
    with pytest.raises(ConfigError, match="a-seed0 was run with other settings"):
        run_configs(tmp_path / "s", changed)
    # A setting added to the code since a trial was saved takes its default: not a change.
    sweep_json = tmp_path / "s" / "sweep.json"
    data = json.loads(sweep_json.read_text())
    del data["trials"][0]["config"]["safety"]["shield_lookahead"]
    sweep_json.write_text(json.dumps(data))
    assert run_configs(tmp_path / "s", first)["a-seed0"] == records["a-seed0"]


def test_a_finished_trial_whose_run_directory_was_deleted_runs_again(tmp_path):
    """Deleting a run directory is how a user asks for that run again: its stale record in
    finished/ must not stand in for it (its metrics would be gone)."""
    import shutil

    from forethought.sweep import run_configs

    configs = {"a-seed0": tiny_config(tmp_path / "ignored", episodes=1, seed=0)}
    first = run_configs(tmp_path / "s", configs)["a-seed0"]
    shutil.rmtree(first["run_dir"])
    again = run_configs(tmp_path / "s", configs)["a-seed0"]
    assert (Path(again["run_dir"]) / "metrics.jsonl").exists()
    assert again["final_score"] == first["final_score"]  # same seed, same result
    events = [(e["trial"], e["event"]) for e in read_events(tmp_path / "s")]
    assert events.count(("a-seed0", "train")) == 2
