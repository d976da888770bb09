"""Damaged, mixed-up or busy run directories and bad command-line input: each is refused with
one line that says what is wrong and what to do, a non-zero exit, and no traceback."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from forethought.cli import main
from helpers import TINY_ARGS


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--out", str(out), *TINY_ARGS, "--episodes", "2"]) == 0
    return out


def edit_config(run, **changes):
    path = run / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def append_garbage_records(run):
    with open(run / "transitions.bin", "ab") as f:
        f.write(np.full(2 * 11, 0.5).tobytes())  # two whole records with fractional indices


def swap_log_for_another_runs(run):
    other = run.parent / "other"
    assert main(["train", "--out", str(other), *TINY_ARGS, "--episodes", "2", "--seed", "9"]) == 0
    shutil.copy(other / "transitions.bin", run / "transitions.bin")


SELFTRAIN_CONFIG = {"task": "countdown", "iterations": 3, "seed": 0, "prompts": 500}

# (case, how to damage a copy of a finished run, command with RUN standing for its path, message)
CASES = [
    ("config.json is not JSON", lambda r: (r / "config.json").write_text("{oops"),
     ["train", "--resume", "RUN"], "config.json is not valid JSON"),
    ("config.json is not an object", lambda r: (r / "config.json").write_text("[1, 2]"),
     ["train", "--resume", "RUN"], "does not hold a configuration object"),
    ("config.json has a wrong type", lambda r: edit_config(r, episodes="ten"),
     ["train", "--resume", "RUN"], "'episodes' is 'ten', expected int"),
    ("config.json has a bad value", lambda r: edit_config(r, eval_episodes=-1),
     ["train", "--resume", "RUN"], "--eval-episodes: must be at least 1"),
    ("checkpoint.pt truncated", lambda r: (r / "checkpoint.pt").write_bytes((r / "checkpoint.pt").read_bytes()[:500]),
     ["train", "--resume", "RUN"], "checkpoint.pt is damaged"),
    ("checkpoint.pt empty", lambda r: (r / "checkpoint.pt").write_bytes(b""),
     ["train", "--resume", "RUN"], "checkpoint.pt is damaged"),
    ("checkpoint.pt deleted", lambda r: (r / "checkpoint.pt").unlink(),
     ["train", "--resume", "RUN"], "checkpoint.pt is missing, but"),
    ("transitions.bin deleted", lambda r: (r / "transitions.bin").unlink(),
     ["train", "--resume", "RUN"], "holds 0 transitions, but the checkpoint was taken after 60"),
    ("transitions.bin truncated", lambda r: os.truncate(r / "transitions.bin", 96 * 10),
     ["train", "--resume", "RUN"], "holds 10 transitions, but the checkpoint was taken after 60"),
    ("transitions.bin with garbage appended", append_garbage_records,
     ["train", "--resume", "RUN"], "transitions.bin is damaged at record 60"),
    ("transitions.bin of another run", swap_log_for_another_runs,
     ["train", "--resume", "RUN"], "the two come from different runs"),
    ("transitions.json is not JSON", lambda r: (r / "transitions.json").write_text("garbage"),
     ["train", "--resume", "RUN"], "transitions.json is not valid JSON"),
    ("resume of a directory that does not exist", lambda r: shutil.rmtree(r),
     ["train", "--resume", "RUN"], "is not a directory"),
    ("resume of a directory without config.json", lambda r: (r / "config.json").unlink(),
     ["train", "--resume", "RUN"], "not a run directory (no config.json in it)"),
    ("--out on a directory holding another run's files", lambda r: (r / "config.json").unlink(),
     ["train", "--out", "RUN", *TINY_ARGS], "but no config.json"),
    ("--out on a finished run", lambda r: None,
     ["train", "--out", "RUN", *TINY_ARGS], "already holds a run; pass --resume"),
    ("--out is a file", lambda r: (shutil.rmtree(r), r.write_text("x")),
     ["train", "--out", "RUN", *TINY_ARGS], "is a file, not a directory"),
    ("--out below a file", lambda r: (shutil.rmtree(r), r.write_text("x")),
     ["train", "--out", "RUN/sub", *TINY_ARGS], "cannot create a run directory at"),
    ("train --resume on an lm selftrain run", lambda r: (r / "config.json").write_text(json.dumps(SELFTRAIN_CONFIG)),
     ["train", "--resume", "RUN"], "forethought lm selftrain --resume"),
    ("diagnose on an lm selftrain run", lambda r: (r / "config.json").write_text(json.dumps(SELFTRAIN_CONFIG)),
     ["diagnose", "RUN"], "forethought lm selftrain --resume"),
    ("evaluate on an lm selftrain run", lambda r: (r / "config.json").write_text(json.dumps(SELFTRAIN_CONFIG)),
     ["evaluate", "RUN"], "forethought lm selftrain --resume"),
    ("diagnose on an MBPO run", lambda r: edit_config(r, algo="mbpo"),
     ["diagnose", "RUN"], "diagnose reads the dynamics model of an --algo mpc run"),
    ("evaluate on an MPC run", lambda r: None,
     ["evaluate", "RUN"], "is an --algo mpc run; evaluate needs an --algo mbpo, loop or sac run"),
    ("evaluate --episodes -1", lambda r: None,
     ["evaluate", "RUN", "--episodes", "-1"], "--episodes: must be at least 1"),
    ("evaluate --episodes 0", lambda r: None,
     ["evaluate", "RUN", "--episodes", "0"], "--episodes: must be at least 1"),
    ("resume with a setting that cannot change", lambda r: None,
     ["train", "--resume", "RUN", "--planner", "cem"], "--planner cannot change when resuming"),
    ("--device that does not exist", lambda r: shutil.rmtree(r),
     ["train", "--out", "RUN", *TINY_ARGS, "--device", "tpu"], "--device: 'tpu' is not a torch device"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "command", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_bad_case_is_one_line(finished_run, tmp_path, capsys, damage, command, message):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run)
    code = main([str(run) + a[3:] if a.startswith("RUN") else a for a in command])
    out = capsys.readouterr().out
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    assert message in out and "Traceback" not in out


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "forethought.cli", "train"]
    first = subprocess.Popen([*cli, "--out", str(out), *TINY_ARGS, "--episodes", "50"], env=env)
    try:
        deadline = time.time() + 60
        while not (out / "transitions.bin").exists() and time.time() < deadline:
            time.sleep(0.01)
        second = subprocess.run(
            [*cli, "--resume", str(out)], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stdout
        assert "Traceback" not in second.stdout + second.stderr
        assert first.poll() is None  # the first writer was not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel drops the lock with its holder, so a resume after a kill just works.
    resumed = subprocess.run(
        [*cli, "--resume", str(out), "--episodes", "2"], env=env, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
