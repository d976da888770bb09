"""benchmarks/loop_value_ablation.py: each variant changes one part of the benchmark's loop run,
and the turn count tells a balanced pendulum from a rotating one."""

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import loop_value_ablation as ablation


def test_each_variant_changes_only_its_part_of_the_loop_run(tmp_path):
    base = asdict(ablation.config_for("base", 3, 600, tmp_path / "base"))
    assert (base["algo"], base["env"], base["seed"], base["steps"]) == (
        "loop",
        "Pendulum-v1",
        3,
        600,
    )
    for variant, (loop, value) in ablation.VARIANTS.items():
        config = asdict(ablation.config_for(variant, 3, 600, tmp_path / variant))
        changed = {
            (part, k)
            for part in ("loop", "value")
            for k in config[part]
            if config[part][k] != base[part][k]
        }
        assert changed == {("loop", k) for k in loop} | {("value", k) for k in value}
        assert {k: v for k, v in config.items() if k not in ("loop", "value", "out")} == {
            k: v for k, v in base.items() if k not in ("loop", "value", "out")
        }


def test_turns_and_velocity_read_from_the_transition_log(tmp_path):
    from forethought.data.log import TransitionLog

    log = TransitionLog(tmp_path / "transitions.bin", 3, 1)
    spin = np.linspace(0, 4 * np.pi, 200)  # two full turns at a steady speed
    for t, angle in enumerate(spin):
        obs = np.array([np.cos(angle), np.sin(angle), 0.5])
        log.append(0, t, obs, np.zeros(1), -1.0, obs, False, t == 199)
    for t in range(200):  # still at the top
        obs = np.array([1.0, 0.0, 0.0])
        log.append(1, t, obs, np.zeros(1), 0.0, obs, False, t == 199)
    log.close()
    rows = ablation.episodes(tmp_path, steps=400)
    assert [round(r["turns"], 2) for r in rows] == [2.0, 0.0]
    assert rows[0]["mean_abs_velocity_last_100"] == 0.5 and rows[1]["return"] == 0.0
    assert len(ablation.episodes(tmp_path, steps=200)) == 1  # only the first `steps` transitions
