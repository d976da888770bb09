"""Kill a run with SIGKILL at random moments, resume it, and check that its buffer holds every
transition completed before each kill exactly once."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from forethought.buffer import ReplayBuffer, TransitionLog
from forethought.runs import RunDir
from helpers import TINY_ARGS

EPISODES, STEPS = 4, 30


def start(args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "forethought.cli", "train", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def records(log_path):
    """Transitions in the log, as one array per record (ignoring a partial record)."""
    if not log_path.exists():
        return np.zeros((0, 1))
    raw = np.fromfile(log_path, dtype=np.float64)
    size = 2 + 3 + 1 + 1 + 3 + 2  # episode, t, obs, action, reward, next_obs, flags (Pendulum)
    return raw[: len(raw) // size * size].reshape(-1, size)


def test_sigkill_mid_episode_then_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "run"
    log_path = out / "transitions.bin"
    rng = random.Random(7)
    args = ["--out", str(out), "--episodes", str(EPISODES), *TINY_ARGS]
    proc = start(args)
    snapshots = []
    for _ in range(3):
        # A random point that is not an episode boundary, somewhere in the remaining steps.
        done = len(records(log_path))
        target = rng.randrange(done + 3, min(done + 40, EPISODES * STEPS - 2))
        if target % STEPS == 0:
            target += 1
        deadline = time.time() + 120
        while len(records(log_path)) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        snapshots.append(records(log_path).copy())
        proc = start(["--resume", str(out)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    run = RunDir(out)
    final_log = records(log_path)
    for snapshot in snapshots:  # everything completed before a kill is still there, in order
        np.testing.assert_array_equal(final_log[: len(snapshot)], snapshot)

    buffer = ReplayBuffer.from_state_dict(run.load_checkpoint()["buffer"])
    _, logged = TransitionLog(log_path, 3, 1).read()
    assert buffer.total_added == len(logged) == len(final_log)  # exactly once
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(buffer.all(), name), getattr(logged, name))

    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    episodes = [r["episode"] for r in rows if "event" not in r]
    assert episodes == list(range(EPISODES))  # each episode recorded once
    interruptions = [r for r in rows if r.get("event") == "interrupted"]
    assert (
        sum(r["transitions_recovered"] for r in interruptions) == len(final_log) - EPISODES * STEPS
    )
    assert rows[-1]["env_steps"] == len(final_log)


def test_resume_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    from forethought.cli import main

    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().out
