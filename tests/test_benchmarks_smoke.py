"""Slow tier: the speed benchmarks run end to end with --quick and write well-formed JSON.

Only the schema is checked (keys present, numbers positive), never timings: the machines are
shared and noisy. The mbrl-lib side needs its own venv (benchmarks/peers/setup_mbrl.sh, built on
first use); if it cannot be installed, the JSON must say why and forethought's side and the floor
must still be there.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

pytestmark = pytest.mark.slow


def run_quick(script: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,  # a first run also builds mbrl-lib's venv
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def check_common(data: dict, name: str) -> None:
    assert data["benchmark"] == name
    assert data["quick"] is True
    machine = data["machine"]
    for key in ("cpu", "cores", "torch_threads", "python", "versions"):
        assert key in machine
    assert machine["versions"]["torch"]
    assert data["threads"]["forethought"] >= 1
    for shape in ("mm_2048", "config_bmm"):
        entry = data["matmul"][shape]
        assert entry["gflops"] and all(positive(g) for g in entry["gflops"])
        assert positive(entry["median_gflops"])
    assert positive(data["macs_per_row"])
    peer = data["mbrl"]
    if "error" in peer:
        assert isinstance(peer["error"], str) and peer["error"]
    else:
        assert peer["versions"]["mbrl"] == "0.2.0"
        assert data["threads"]["mbrl"] == data["threads"]["forethought"]
    assert positive(data["wall_s"])


def test_imagination_quick(tmp_path):
    data = run_quick("imagination.py", tmp_path / "imagination.json")
    check_common(data, "imagination")
    assert data["config"]["batch_start_states"] == 100_000
    assert positive(data["floor"]["transitions_per_s"])
    for horizon in ("1", "5"):
        for variant, rows in data["forethought"].items():
            row = rows[horizon]
            assert row["seconds"] and all(positive(s) for s in row["seconds"]), variant
            assert positive(row["median_transitions_per_s"])
        summary = data["summary"][horizon]
        assert positive(summary["floor_transitions_per_s"])
        assert positive(summary["forethought_ts1_transitions_per_s"])
        if "error" not in data["mbrl"]:
            peer = data["mbrl"]["horizons"][horizon]
            assert all(positive(s) for s in peer["seconds"])
            assert positive(summary["mbrl_transitions_per_s"])
            assert positive(summary["forethought_ts1_over_mbrl"])


def test_latency_quick(tmp_path):
    data = run_quick("latency.py", tmp_path / "latency.json")
    check_common(data, "latency")
    assert data["rows_per_action"] == 500 * 5 * 20 * 15
    fore = data["forethought"]
    assert len(fore["ms"]) == data["config"]["timed_actions"]
    assert all(positive(ms) for ms in fore["ms"])
    assert fore["model_rows_per_action"] >= data["rows_per_action"]
    summary = data["summary"]
    for key in ("forethought_ms", "floor_ms", "forethought_over_floor"):
        assert positive(summary[key]), key
    if "error" not in data["mbrl"]:
        assert len(data["mbrl"]["ms"]) == data["config"]["timed_actions"]
        for key in ("mbrl_ms", "mbrl_over_forethought", "mbrl_over_floor"):
            assert positive(summary[key]), key


def test_discrete_planning_quick_compares_tree_search_and_discrete_cem(tmp_path):
    data = json.loads(
        subprocess.run(
            [sys.executable, str(BENCHMARKS / "discrete_planning.py"), "--quick",
             "--out", str(tmp_path / "dp.json")],
            cwd=ROOT, capture_output=True, text=True, timeout=900, check=True,
        ) and (tmp_path / "dp.json").read_text()
    )  # fmt: skip
    assert data["benchmark"] == "discrete_planning" and data["quick"] is True
    assert set(data["configs"]) == {"mcts-8", "dcem-h8-p8-i2"}
    for entry in data["configs"].values():
        assert len(entry["returns"]) == 2 and positive(entry["model_rows_per_action"])
        assert positive(entry["ms_per_action"])
    assert (tmp_path / "dp.png").stat().st_size > 5_000


def test_mujoco_quick_runs_the_planner_with_a_learned_value(tmp_path):
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "mujoco_tasks.py"), "--quick",
         "--methods", "loop", "--cheetah-methods", "loop",
         "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "mujoco.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True,
    )  # fmt: skip
    data = json.loads((tmp_path / "mujoco.json").read_text())
    (entry,) = data["inverted_pendulum"]["runs"]["loop"]
    assert entry["budget"] == 600 and entry["curve_steps"][-1] >= 600
    assert len(entry["curve_actor_returns"]) == len(entry["curve_steps"])  # the actor alone
    summary = data["inverted_pendulum"]["summary"]["methods"]["loop"]
    assert summary["seeds"] == [0]
    (cheetah,) = data["half_cheetah"]["budgets"]["3000"]["runs"]["loop"]
    assert cheetah["curve_steps"][-1] == 3000 and positive(cheetah["ms_per_action_median"])


def test_offline_and_ope_quick(tmp_path):
    """Tiers from a tiny SAC run, every method of ours on both tiers, then OPE on them."""
    out = tmp_path / "offline.json"
    command = [sys.executable, str(BENCHMARKS / "offline.py"), "--quick", "--out", str(out)]
    methods = ["--methods", "bc", "mopo", "mopo-h25", "morel"]
    proc = subprocess.run([*command, *methods], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["environments"]) == {"Pendulum-v1", "Hopper-v5"}
    for block in data["environments"].values():
        assert set(block["scores"]) == {"medium", "medium-replay"} and block["machine"]
        for table in block["scores"].values():
            assert set(table) == {"behaviour", "bc", "mopo", "mopo-h25", "morel"}
            assert all(math.isfinite(v["normalized_score"]["mean"]) for v in table.values())
    ope = run_quick("ope.py", tmp_path / "ope.json")
    for tier in ("medium-expert", "medium"):
        assert set(ope["datasets"][tier]["summary"]) == {"model", "fqe"}
    command = [sys.executable, str(BENCHMARKS / "ope.py"), "--quick", "--selection",
               "--out", str(tmp_path / "ope.json")]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    selection = json.loads((tmp_path / "ope-selection-medium.json").read_text())
    labels = {Path(p["policy"]).name for p in selection["policies"]}
    assert labels == {"bc-seed0", "mopo-seed0", "mopo-h25-seed0"}
    assert selection["summary"]["model"]["policies"] == 3 and selection["machine"]
    # Hopper's selection adds a random policy and behaviour snapshots, and keeps the offline
    # runs' own summary apart.
    command = [*command[:4], "Hopper-v5", *command[4:]]  # --selection Hopper-v5
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hopper = json.loads((tmp_path / "ope-selection-hopper-medium.json").read_text())
    assert hopper["summary"]["model"]["policies"] == 6
    assert hopper["summary_offline_runs"]["model"]["policies"] == 3


def test_lm_arms_quick(tmp_path):
    """GRPO (gold, pass/fail, proxy), expert iteration and the hybrid grid, end to end on the
    shipped Countdown models, with the compute ledger behind every configuration."""
    out = tmp_path / "lm_arms.json"
    command = [sys.executable, str(BENCHMARKS / "lm_arms.py"), "--quick", "--out", str(out),
               "--runs", str(tmp_path / "runs")]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for arm in ("grpo", "solved", "proxy", "selftrain"):
        curve = data[arm]["0"]["curve"]
        assert curve[0]["ledger"]["optimizer_steps"] == 0 and positive(
            curve[-1]["ledger"]["tokens"]
        )
    assert set(data["hybrid"]) == {"base", "grpo", "expert iteration", "grpo (pass/fail)"}
    assert data["hybrid_training_tokens"]["base"] == 0
    from forethought.lm import compare  # a 10 s import: not at collection

    configs = data["configurations"]
    assert {c["method"] for c in configs} == {"plain", *compare.METHODS}
    assert all(c["t"] <= max(c["budget"], 24) for c in configs)  # no search overspent
    assert {row["served"] for row in data["decision"]} == {100, 1_000, 10_000, 100_000, 1_000_000}
    assert (tmp_path / "lm_arms.png").stat().st_size > 0


def test_safety_quick_writes_one_block_per_task(tmp_path):
    out = tmp_path / "safety.json"
    for task in ("cartpole-position", "pendulum-zone"):
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / "safety.py"), "--quick", "--out", str(out),
             "--task", task, "--methods", "mpc", "mpc-constrained"],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True and set(data["tasks"]) == {"cartpole-position", "pendulum-zone"}
    for block in data["tasks"].values():  # the second run kept the first task's block
        assert set(block["methods"]) == {"mpc", "mpc-constrained"}
        assert len(block["random_policy"]["starts_violating"]) == 10
        for entry in block["methods"]["mpc-constrained"]:
            assert len(entry["final_eval_costs"]) == 10 and entry["final_eval_cost"] >= 0
        assert "return_lost_by_constraint" in block["comparisons"]
    assert data["tasks"]["pendulum-zone"]["random_policy"]["starts_violating"][1]  # seed 1001
    assert out.with_suffix(".png").exists()
