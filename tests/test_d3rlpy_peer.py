"""Slow tier: the d3rlpy peer (benchmarks/peers/d3rlpy_bench.py, run in d3rlpy's own venv) resumes
a killed run and ends where an uninterrupted one does. Its runs take hours on Hopper, so a kill
must not cost them. Skipped where the venv has not been built (benchmarks/peers/setup_d3rlpy.sh,
which `benchmarks/offline.py` runs on first use)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "peers" / "d3rlpy_bench.py"
PYTHON = ROOT / "benchmarks" / ".peers" / "d3rlpy-venv" / "bin" / "python"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PYTHON.exists(), reason="d3rlpy venv not built"),
]


def random_pendulum_dataset(path: Path) -> None:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "timeouts")}
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        for t in range(200):
            action = rng.uniform(-2, 2, size=1).astype(np.float32)
            next_obs, reward, _, _, _ = env.step(action)
            rows["observations"].append(obs)
            rows["actions"].append(action)
            rows["rewards"].append(reward)
            rows["timeouts"].append(t == 199)
            obs = next_obs
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}
    np.savez(path, terminals=np.zeros_like(arrays["rewards"]), **arrays)


def start(spec: Path, out: Path) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(PYTHON), str(BENCH), str(spec), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    random_pendulum_dataset(tmp_path / "data.npz")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "dataset": str(tmp_path / "data.npz"),
                "env": "Pendulum-v1",
                "algo": "td3+bc",
                "steps": 600,
                "eval_every": 200,
                "seed": 0,
                "eval_seeds": [1, 2],
            }
        )
    )
    whole = start(spec, tmp_path / "whole.json")
    assert whole.wait(timeout=600) == 0

    killed = start(spec, tmp_path / "resumed.json")
    checkpoint = tmp_path / "resumed.json.checkpoint"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoint.exists() and not (tmp_path / "resumed.json").exists()

    resumed = start(spec, tmp_path / "resumed.json")
    stdout, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0
    assert "resumed at 200 gradient steps" in stdout
    assert "600/600 gradient steps" in stdout
    assert not checkpoint.exists()

    curve = json.loads((tmp_path / "whole.json").read_text())["curve"]
    assert [c["gradient_steps"] for c in curve] == [200, 400, 600]
    assert json.loads((tmp_path / "resumed.json").read_text())["curve"] == curve
