"""Slow tier: the uncertainty benchmark runs end to end in --quick mode and writes its JSON.
Only the schema is checked; the numbers themselves live in benchmarks/results/."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
def test_uncertainty_benchmark_quick(tmp_path):
    out = tmp_path / "uncertainty.json"
    subprocess.run(
        [sys.executable, "uncertainty.py", "--quick", "--out", str(out)],
        cwd=BENCHMARKS,
        check=True,
        timeout=1800,
    )
    data = json.loads(out.read_text())
    assert {"machine", "settings", "drift", "pessimism"} <= set(data)
    assert data["machine"]["cores"] >= 1 and "torch" in data["machine"]["versions"]
    seed = data["drift"]["0"]
    assert seed["no_drift_false_alarms"] >= 0
    for schedule in ("triggered", "per_episode"):
        summary = seed[schedule]
        assert {"alarms", "detection_delay", "pre_drift_eval_return", "steps_to_recover"} <= set(
            summary
        )
        assert all(isinstance(step, int) for step, _ in summary["evaluations"])
    for label in ("neutral", "pessimistic"):
        assert data["pessimism"]["0"][label]["median_plan_disagreement"] > 0
