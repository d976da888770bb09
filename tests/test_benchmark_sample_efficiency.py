"""Slow tier: the sample-efficiency benchmark runs end to end with --quick and writes a
well-formed JSON and plot (schema only; the numbers are the benchmark's business)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_quick_sample_efficiency_writes_curves_ratios_and_a_plot(tmp_path):
    out = tmp_path / "sample_efficiency.json"
    script = ROOT / "benchmarks" / "sample_efficiency.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out), "--runs", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "sample_efficiency" and data["quick"] is True
    assert data["machine"]["versions"]["stable-baselines3"]
    env = data["envs"]["Pendulum-v1"]
    assert set(env["runs"]) == {"mpc", "sac", "ppo"}
    for method, seeds in env["runs"].items():
        (run,) = seeds
        assert len(run["curve_steps"]) == len(run["curve_returns"]) >= 2
        assert run["curve_steps"] == sorted(run["curve_steps"])
        assert run["curve_steps"][-1] >= run["budget"]
        aggregate = env["summary"]["methods"][method]["steps_to_threshold_aggregate"]
        assert aggregate["iqm_ci95"][0] <= aggregate["iqm"] <= aggregate["iqm_ci95"][1]
    for peer in ("sac", "ppo"):
        ratio = env["summary"]["ratio_vs_mpc"][peer]
        assert ratio["ratio"] > 0 and ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1]
    assert out.with_suffix(".png").stat().st_size > 10_000


def run_quick(script: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / f"{script}.json"
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out)]
    proc = subprocess.run(
        [*command, "--runs", str(tmp_path / "runs"), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_quick_matched_return_names_the_fastest_matching_setting(tmp_path):
    data = run_quick("matched_return.py", tmp_path)
    assert data["benchmark"] == "matched_return" and data["quick"] is True
    for row in data["settings"].values():
        assert row["ms_per_action_median"] > 0 and len(row["seeds"]) == 1
        assert isinstance(row["matches"], bool)
    for reading, criterion in (("trial", "matches_trial"), ("strict", "matches")):
        fastest = data["summary"][f"fastest_matching_{reading}"]["setting"]
        assert fastest is None or data["settings"][fastest][criterion]


def test_quick_mujoco_compares_mbpo_mpc_and_sac(tmp_path):
    data = run_quick(
        "mujoco_tasks.py", tmp_path, "--methods", "mpc", "mbpo", "sac",
        "--cheetah-methods", "sac", "mbpo",
    )  # fmt: skip
    pendulum = data["inverted_pendulum"]
    assert set(pendulum["runs"]) == {"mpc", "mbpo", "sac"}
    assert "sac_over_mbpo" in pendulum["summary"]
    cheetah = data["half_cheetah"]
    assert set(cheetah["budgets"]["3000"]["runs"]) == {"sac", "mbpo"}
    controllers = cheetah["controllers"]["mbpo-3000-seed0"]
    for name in ("policy", "mpc", "guided", "switch"):
        assert controllers[name]["ms_per_action_median"] > 0
    assert (tmp_path / "mujoco_tasks.py_cheetah.png").stat().st_size > 10_000
