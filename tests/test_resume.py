"""Kill an MPC run with SIGKILL at chosen and random moments (before its first checkpoint,
mid-episode, mid-fit or mid-evaluation), resume it each time, and check that it ends exactly as
the run that was never killed: same buffer, same counted log, same metrics, same weights."""

import json
import random

import numpy as np
import pytest
import torch

from forethought.data import TransitionLog
from forethought.trainers.run_dir import RunDir
from helpers import TINY_ARGS, kill_when, start_cli

EPISODES, STEPS = 4, 30
ARGS = [*TINY_ARGS, "--episodes", str(EPISODES), "--eval-every-steps", "25", "--monitor.enabled"]
TIMING = {
    "fit_seconds",
    "ms_per_action",
    "cpu_seconds",
    "eval_cpu_seconds",
}  # differ between any two runs


def last_record(log_path):
    """(episode, t) of the last complete record in the log, or None."""
    size = 2 + 3 + 1 + 1 + 3 + 2  # episode, t, obs, action, reward, next_obs, flags (Pendulum)
    if not log_path.exists() or log_path.stat().st_size < 8 * size:
        return None
    raw = np.fromfile(log_path, dtype=np.float64)
    record = raw[: len(raw) // size * size][-size:]
    return int(record[0]), int(record[1])


def episode_rows(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x and "event" not in x]


def final_state(out):
    run = RunDir(out)
    checkpoint = run.load_checkpoint()
    progress = checkpoint["progress"]
    log = TransitionLog(run.log_path, 3, 1)
    counted = log.committed([tuple(r) for r in progress["abandoned"]], progress["log_records"])
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in episode_rows(out)]
    events = [
        {k: v for k, v in json.loads(r).items() if k not in TIMING}
        for r in run.metrics_path.read_text().splitlines()
        if '"event"' in r and "resumed" not in r
    ]
    return checkpoint, counted, rows, events, len(log)


def test_killed_anywhere_and_resumed_equals_the_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    assert start_cli(["--out", str(reference), *ARGS]).wait(timeout=300) == 0

    out, log_path, rng = tmp_path / "run", tmp_path / "run" / "transitions.bin", random.Random(7)
    t1, t2, t3 = rng.randrange(3, 25), rng.randrange(3, 28), rng.randrange(3, 28)
    kills = [
        ("mid-episode, before the first checkpoint", lambda: (last_record(log_path) or (0, 0))[1] >= t1),
        ("mid-fit or evaluation, before the first checkpoint",
         lambda: last_record(log_path) == (0, STEPS - 1) and not (out / "checkpoint.pt").exists()),
        ("mid-episode", lambda: (last_record(log_path) or (0, 0)) >= (1, t2)),
        ("mid-fit or evaluation",
         lambda: last_record(log_path) == (2, STEPS - 1) and len(episode_rows(out)) < 3),
        ("mid-episode, the last episode", lambda: (last_record(log_path) or (0, 0)) >= (3, t3)),
    ]  # fmt: skip
    proc = start_cli(["--out", str(out), *ARGS])
    for what, condition in kills:
        kill_when(proc, condition, what)
        proc = start_cli(["--resume", str(out)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    want_checkpoint, want_log, want_rows, want_events, want_records = final_state(reference)
    checkpoint, counted, rows, events, records = final_state(out)
    assert records > want_records  # the interrupted attempts are still in the log ...
    assert len(counted) == want_records == EPISODES * STEPS  # ... but only one attempt counts
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(counted, name), getattr(want_log, name))
        np.testing.assert_array_equal(
            checkpoint["buffer"][name], want_checkpoint["buffer"][name], err_msg=name
        )
    assert rows == want_rows  # every episode once, the same returns and evaluations
    assert events == want_events  # step-schedule evaluations, drift checks
    for key, value in want_checkpoint["model"].items():
        assert torch.equal(checkpoint["model"][key], value), key
    resumes = [json.loads(r) for r in RunDir(out).metrics_path.read_text().splitlines()]
    assert [r["on_resume"] for r in resumes if r.get("event") == "resumed"]  # marked in metrics


# One on_resume policy's bookkeeping; the kill-anywhere test above covers replay (slow tier).
@pytest.mark.slow
def test_keep_counts_the_interrupted_episode_once(tmp_path):
    out, log_path = tmp_path / "run", tmp_path / "run" / "transitions.bin"
    args = [*TINY_ARGS, "--episodes", "3"]
    proc = start_cli(["--out", str(out), *args])
    kill_when(proc, lambda: (last_record(log_path) or (0, 0)) >= (1, 12), "episode 1")
    resumed = start_cli(["--resume", str(out), "--on-resume", "keep"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    checkpoint = RunDir(out).load_checkpoint()
    progress = checkpoint["progress"]
    rows = episode_rows(out)
    assert [r["episode"] for r in rows] == [0, 1, 2]
    partial = rows[1]["env_steps"] - rows[0]["env_steps"]
    assert 13 <= partial < STEPS  # the kept episode is shorter than a full one
    assert progress["abandoned"] == []  # nothing replayed, nothing abandoned
    assert (
        checkpoint["buffer"]["meta"][3]
        == progress["log_records"]
        == len(TransitionLog(log_path, 3, 1))
    )  # every logged transition counted exactly once


@pytest.mark.parametrize("policy", ["replay", "keep"])
def test_resume_of_a_finished_run_changes_nothing(tmp_path, policy):
    from forethought.cli import main

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY_ARGS, "--episodes", "2"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--resume", str(out), "--on-resume", policy]) == 0
    assert len(episode_rows(out)) == 2
    assert torch.load(out / "checkpoint.pt", weights_only=False)["progress"]["env_steps"] == 60
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_can_extend_a_run_but_not_change_it(tmp_path, capsys):
    from forethought.cli import main

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY_ARGS, "--episodes", "2"]) == 0
    assert main(["train", "--resume", str(out), "--planner", "cem"]) == 2
    assert "--planner cannot change when resuming" in capsys.readouterr().out
    # the run's own settings, given again (as `dataset make-tiers` does), are not a change
    assert main(["train", "--resume", str(out), "--eval-episodes", "2", "--quiet"]) == 0
    assert main(["train", "--resume", str(out), "--episodes", "3", "--quiet"]) == 0
    assert [r["episode"] for r in episode_rows(out)] == [0, 1, 2]
    assert json.loads((out / "config.json").read_text())["episodes"] == 3


def test_a_row_checkpointed_just_before_a_kill_keeps_its_cpu_stamp(tmp_path):
    """A kill between the checkpoint and the metrics append: the resume writes the row back
    from the checkpoint, stamp included (learning CPU to a threshold needs every stamp)."""
    from forethought.config import TrainConfig
    from forethought.trainers import resume, train
    from helpers import tiny_config

    out = tmp_path / "run"
    train(tiny_config(out, episodes=2))
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-1]) + "\n")  # the last append never happened
    rows = resume(out, given=TrainConfig(episodes=2)).history
    assert [r["episode"] for r in rows] == [0, 1]
    assert all(r["cpu_seconds"] > 0 for r in rows)
    assert json.loads(metrics.read_text().splitlines()[-1])["cpu_seconds"] > 0
