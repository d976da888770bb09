"""The sample-efficiency summaries: an interval is a function of its own seeds, so adding a
method, a seed elsewhere or another environment to the results file never moves it."""

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import pytest  # noqa: E402

import curves  # noqa: E402
import runs  # noqa: E402
import sample_efficiency as se  # noqa: E402
from forethought.storage import RunLock  # noqa: E402


def seeds(steps: list[int | None], budget: int = 3_000) -> list[dict]:
    return [
        {"seed": i, "budget": budget, "steps_to_threshold": s, "final_eval_return": 500.0,
         "eval_return_at_1000": 100.0, "curve_steps": [500, budget], "curve_returns": [100.0, 500.0]}
        for i, s in enumerate(steps)
    ]  # fmt: skip


def test_an_interval_depends_on_its_own_seeds_only():
    alone = {"mcts": seeds([2175, 849, 1752]), "dqn": seeds([14_000, 15_000, 21_000], 50_000)}
    crowded = {"discrete-cem": seeds([2096, None, 753]), **alone}
    first, second = se.summarise("CartPole-v1", alone), se.summarise("CartPole-v1", crowded)
    assert second["ratio_vs_mcts"] == first["ratio_vs_mcts"]
    assert second["methods"]["mcts"] == first["methods"]["mcts"]
    lo, hi = first["ratio_vs_mcts"]["dqn"]["ci95"]
    assert lo < first["ratio_vs_mcts"]["dqn"]["ratio"] < hi  # 50,000 / 4,776: about 10.5x


def test_summarise_rewrites_every_summary_from_the_runs(tmp_path):
    runs = {"mcts": seeds([2175, 849, 1752]), "ppo": seeds([12_000, 22_000, 24_000], 100_000)}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"envs": {"CartPole-v1": {"runs": runs, "summary": {}}}}))
    command = [sys.executable, str(BENCHMARKS / "sample_efficiency.py"), "--summarise"]
    proc = subprocess.run([*command, "--out", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ppo / mcts = 12.1x" in proc.stdout
    written = json.loads(path.read_text())["envs"]["CartPole-v1"]["summary"]
    assert written == json.loads(json.dumps(se.summarise("CartPole-v1", runs)))
    assert path.with_suffix(".png").stat().st_size > 0
    missing = subprocess.run([*command, "--out", str(tmp_path / "none.json")], capture_output=True)
    assert missing.returncode == 2


def test_offline_refuses_to_mix_results_of_rebuilt_datasets(tmp_path):
    import offline

    tiers = {"ref_min_score": -1182.4, "ref_max_score": -120.8, "tiers": {}}
    path = tmp_path / "offline.json"
    assert offline.datasets_changed(path, "Pendulum-v1", tiers) is None  # nothing published
    offline._save(path, False, "Pendulum-v1", tiers, "medium", "bc", {"normalized_score": {}})
    assert offline.datasets_changed(path, "Pendulum-v1", tiers) is None
    assert offline.datasets_changed(path, "Hopper-v5", tiers) is None
    rebuilt = {**tiers, "ref_max_score": -121.6}
    problem = offline.datasets_changed(path, "Pendulum-v1", rebuilt)
    assert "-120.8 there, -1182.4 to -121.6 now" in problem and "\n" not in problem


def test_a_d3rlpy_run_in_training_elsewhere_is_refused_not_resumed_twice(tmp_path):
    """Two offline.py processes asking for the same d3rlpy seed would both resume its checkpoint
    and overwrite each other's; the second stops with one line, and the first keeps going."""
    import offline

    out = tmp_path / "Hopper-v5" / "medium" / "d3rlpy-cql-seed1.json"
    out.parent.mkdir(parents=True)
    with offline.only_trainer(out):
        with pytest.raises(SystemExit) as stop:
            with offline.only_trainer(out):
                pass
        message = str(stop.value)
        assert "d3rlpy-cql-seed1 of Hopper-v5 medium is being trained" in message
        assert "\n" not in message
    with offline.only_trainer(out):  # released once the first is done
        pass


def test_a_benchmark_on_a_busy_sweep_stops_with_one_line(tmp_path):
    """Two benchmarks on one runs directory: the second is refused, naming the holder."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, default=tmp_path)
    runs.add_arguments(parser)
    with RunLock(tmp_path):
        with pytest.raises(SystemExit) as stop:
            runs.run_all(tmp_path, {}, parser.parse_args([]))
    message = str(stop.value)
    assert message.startswith("error: ") and "\n" not in message
    assert "in use by process" in message and "its own --runs" in message


def test_learning_cpu_leaves_out_the_evaluations_up_to_the_threshold():
    rows = [
        {"eval_return": 20.0, "eval_cpu_seconds": 1.0, "cpu_seconds": 3.0},
        {"event": "model_refit", "cpu_seconds": 4.0},
        {"event": "evaluation", "eval_return": 480.0, "eval_cpu_seconds": 5.0, "cpu_seconds": 12.0},
        {"eval_return": 500.0, "eval_cpu_seconds": 9.0, "cpu_seconds": 30.0},
    ]
    assert curves.learning_cpu_seconds_to_threshold(rows, 475) == 6.0  # 12 - (1 + 5)
    assert curves.learning_cpu_seconds_to_threshold(rows, 501) is None  # never reached
    older = [{k: v for k, v in r.items() if k != "eval_cpu_seconds"} for r in rows]
    assert curves.learning_cpu_seconds_to_threshold(older, 475) is None  # not recorded


def test_a_run_stopped_at_the_threshold_has_no_curve_after_it():
    rows = [{"env_steps": s, "eval_return": r} for s, r in [(100, 50.0), (300, 480.0)]]
    stopped = curves.measure(rows, 1.0, seed=0, steps=3_000, threshold=475, stops=True)
    full = curves.measure(rows, 1.0, seed=0, steps=3_000, threshold=475)
    assert stopped["stopped_at_threshold"] and not full["stopped_at_threshold"]
    assert stopped["steps_to_threshold"] == full["steps_to_threshold"] == 300
    grid = [50, 100, 300, 1_000]
    assert curves.on_grid(full, grid).tolist()[1:] == [50.0, 480.0, 480.0]  # carried forward
    assert str(curves.on_grid(stopped, grid).tolist()) == "[nan, 50.0, 480.0, nan]"
    told_but_short = curves.measure(rows[:1], 1.0, seed=0, steps=3_000, threshold=475, stops=True)
    assert not told_but_short["stopped_at_threshold"]  # a run that never got there


def test_two_evaluations_at_the_last_step_are_averaged_not_the_best_one_kept():
    """A schedule ending on the last step evaluates the final agent twice; the final return is
    their mean whichever is higher, and the curve keeps them in the order they were made."""
    for scheduled, closing in [(2885.9, 2782.6), (2878.3, 2893.8)]:
        rows = [
            {"env_steps": 45_000, "eval_return": 2871.8},
            {"event": "evaluation", "env_steps": 50_000, "eval_return": scheduled},
            {"event": "model_refit", "env_steps": 50_000, "eval_return": 1e9},  # not an eval
            {"env_steps": 50_000, "eval_return": closing},
        ]
        x, y = curves.curve(rows)
        assert x.tolist() == [45_000, 50_000, 50_000] and y.tolist()[1:] == [scheduled, closing]
        entry = curves.measure(rows, 1.0, seed=0, steps=50_000, threshold=1e4)
        assert entry["final_eval_return"] == pytest.approx((scheduled + closing) / 2)


def test_the_sweeps_final_score_is_the_mean_at_the_last_point():
    from forethought.sweep.execute import final_score
    from forethought.sweep.kinds import TRAIN

    assert final_score({"x": [], "y": []}) is None
    assert final_score({"x": [1, 2, 2], "y": [5.0, 9.0, 7.0]}) == 8.0
    rows = [{"env_steps": 2, "eval_return": 9.0}, {"env_steps": 2, "eval_return": 7.0}]
    assert TRAIN.curve(rows)["y"] == [9.0, 7.0]  # recorded order, not sorted by score


def test_every_benchmark_method_makes_a_valid_config(tmp_path):
    """Each environment's methods turn into a config that `forethought train` accepts; iCEM with
    the value at its horizon evaluates on the step schedule only and stops at the threshold."""
    for env, budgets in se.BUDGET.items():
        for method in budgets:
            config = se.config_for(env, method, 0, 600, se.EVERY[env], tmp_path)
            config.validate()
    config = se.config_for("InvertedPendulum-v5", "mpc-value", 0, 600, 500, tmp_path)
    assert (config.algo, config.planner, config.planning.horizon) == ("mpc", "icem", 40)
    assert config.value.at_horizon and config.rollout.discount == 0.98
    assert (config.eval_every_steps, config.eval_every) == (500, 10_000)
    assert config.stop_at_return == 1000.0
    import mujoco_tasks

    for method in ("sac", "mbpo", *mujoco_tasks.LOOP_METHODS):
        mujoco_tasks.cheetah_config(method, 0, 20_000, tmp_path, "cpu").validate()
    anchored = mujoco_tasks.cheetah_config("loop-anchor", 0, 20_000, tmp_path, "cpu")
    assert anchored.loop.anchor and anchored.planning.init_std == 0.1
    assert anchored.loop.imagined_ratio == 0.95 and anchored.planning.horizon == 5
    critic = mujoco_tasks.cheetah_config("loop-anchor-critic", 0, 20_000, tmp_path, "cpu")
    assert critic.loop == replace(anchored.loop, value="critic")
    assert critic.planning == anchored.planning and anchored.loop.value == "behaviour"
    sampled = mujoco_tasks.cheetah_config("loop-anchor-sampled", 0, 20_000, tmp_path, "cpu")
    assert sampled.loop == replace(anchored.loop, anchor_sampled=True)
    assert sampled.planning == anchored.planning and sampled.loop.proposals >= 2


def test_half_cheetah_summary_compares_with_mbpo_on_shared_seeds():
    """Seeds 0-2 shared, seed 3 ours only: the tally and the paired difference read the shared
    seeds; the probability of improvement every pair of runs (here 7 of 12 ours above, 1 tie)."""
    import mujoco_tasks

    def rows(returns: dict[int, float]) -> list[dict]:
        return [{"seed": k, "final_eval_return": v} for k, v in returns.items()]

    runs = {"mbpo": rows({0: 100.0, 1: 300.0, 2: 200.0}),
            "loop": rows({0: 150.0, 1: 250.0, 2: 200.0, 3: 400.0})}  # fmt: skip
    summary = mujoco_tasks.summarise_budget(runs)
    assert "against_mbpo" not in summary["mbpo"]
    versus = summary["loop"]["against_mbpo"]
    assert versus["seeds"] == [0, 1, 2] and versus["at_or_above"] == 2
    assert versus["mean_difference"] == pytest.approx(0.0)
    lo, hi = versus["mean_difference_ci95"]
    assert -50.0 <= lo <= 0.0 <= hi <= 50.0
    assert versus["probability_of_improvement"] == pytest.approx(7.5 / 12)
    assert summary["loop"]["final_eval_return_mean"] == pytest.approx(250.0)
    assert summary["loop"]["final_eval_return_iqm"]["iqm"] == pytest.approx(225.0)
    assert mujoco_tasks.against(rows({5: 1.0}), runs["mbpo"]) is None


def test_safety_sac_shield_rows_reuse_the_sac_trials_and_cheetah_mpc_evaluates_once():
    import safety

    def config(task, method):
        steps = {"sac": 50_000, "mbpo": 3_000}
        return safety.config_for(task, method, 1, 5, steps, Path("/tmp/runs"), 20)

    shielded, sac = config("cheetah-velocity", "sac-shield"), config("cheetah-velocity", "sac")
    assert shielded == sac and sac.out.name == "cheetah-sac-seed1"  # one trial, two rows
    assert safety.SHIELDS["sac-shield"] == "sac" and safety.SHIELDS["mbpo-shield"] == "mbpo-shield"
    mpc = config("cheetah-velocity", "mpc-constrained")
    assert (mpc.episodes, mpc.eval_every, mpc.steps) == (5, 5, 5_000)  # evaluated after the last
    assert config("pendulum-zone", "mpc").eval_every == 1
    assert config("pendulum-zone", "mbpo-shield").out.name == "mbpo-shield-seed1"


def test_paired_steps_pair_each_method_with_mpc_seed_by_seed(tmp_path):
    import paired_steps

    def results(name, runs):
        path = tmp_path / f"sample_efficiency_{name}.json"
        path.write_text(json.dumps({"envs": {"Pendulum-v1": {"runs": runs}}}))
        return path

    mpc = seeds([200, 400, 400, 600], 2_000)
    loop = seeds([200, 600, 200, None], 2_000)  # None: never, counted one evaluation late
    found = paired_steps.collect([results("a", {"mpc": mpc}), results("b", {"loop": loop})])
    row = paired_steps.compare(found)["loop"]
    assert row["steps"] == [200, 600, 200, 2_500] and row["censored"] == [3]
    assert (row["behind"], row["same"], row["ahead"]) == (2, 1, 1)
    assert row["mean_difference"] == pytest.approx((0 + 200 - 200 + 1_900) / 4)
    low, high = row["mean_difference_95"]
    assert -200 <= low <= row["mean_difference"] <= high <= 1_900
    assert paired_steps.sign_test(2, 1) == pytest.approx(1.0)
    assert paired_steps.sign_test(8, 0) == pytest.approx(2 / 256)
    # After the crossing: the lowest evaluation from the first crossing on, and falls back
    # below -200, over the seeds both have one (seed 3 never crossed; seed 2 stopped there).
    curves = {0: [-150, -250, -180], 1: [-300, -250, -180], 2: [-150, -150, -150]}
    for run in loop[:3]:
        run.update(curve_steps=[200, 400, 600], curve_returns=curves[run["seed"]])
    loop[2]["stopped_at_threshold"] = True
    for run in mpc:
        run.update(curve_steps=[200, 400, 600], curve_returns=[-300, -150, -170])
    mpc[0]["curve_returns"] = [-190, -210, -170]
    found = paired_steps.collect([results("a", {"mpc": mpc}), results("b", {"loop": loop})])
    after = paired_steps.compare(found)["loop"]
    assert after["lowest_after"] == [-250, -180, None, None]
    assert after["mpc_lowest_after"] == [-210, -170, -170, -170]
    assert (after["fell_back"], after["mpc_fell_back"], after["seeds_with_after"]) == (1, 1, 2)
    assert after["lower_after_than_mpc"] == 2
    clash = results("c", {"loop": seeds([400], 2_000)})
    with pytest.raises(SystemExit, match="loop seed 0"):
        paired_steps.collect([results("b", {"loop": loop}), clash])


def test_half_cheetah_markdown_marks_seeds_at_or_above_mbpo_and_reads_the_interim_point():
    """The README's tables come from the results: a seed's final return is bold only where it
    is at or above MBPO's on that seed, a seed a method did not run reads "-", and the
    interim table reads each run's latest evaluation at 20,000 steps; the policy-alone table
    lists the loop runs that have one."""
    import mujoco_tasks

    def run(seed: int, final: float, at_20k: float) -> dict:
        return {"seed": seed, "final_eval_return": final, "cpu_seconds": 100.0 * (seed + 1),
                "ms_per_action_median": None, "curve_steps": [10_000, 20_000, 50_000],
                "curve_returns": [0.0, at_20k, final]}  # fmt: skip

    runs = {"mbpo": [run(0, 100.0, 50.0), run(1, 300.0, 60.0)],
            "loop-anchor": [run(0, 150.0, 40.0), run(1, 250.0, 70.0), run(2, 9.0, 1.0)]}  # fmt: skip
    part = {"budgets": {"50000": {"runs": runs, "summary": mujoco_tasks.summarise_budget(runs)}},
            "controllers": {"loop-anchor-50000-seed1": {"policy": {"eval_return": 200.0}},
                            "mbpo-50000-seed1": {"policy": {"eval_return": 300.0}}}}  # fmt: skip
    finals, summary, interim, alone = mujoco_tasks.cheetah_markdown(part).split("\n\n")
    assert "| 50,000 | mbpo | 100.0 | 300.0 | - | 150 | - |" in finals
    assert "| 50,000 | loop-anchor | **150.0** | 250.0 | 9.0 | 200 | - |" in finals
    assert "| 50,000 | loop-anchor | 0-2 | 136.3 ± 98.9 |" in summary
    assert "| 1 of 2 | +0.0 [" in summary
    assert "| 20,000 of 50,000 | loop-anchor | 40.0 | **70.0** | 1.0 | 37.0 | 1 of 2 |" in interim
    assert alone.splitlines()[2:] == ["| 50,000 | loop-anchor | - | 200.0 | - | 200.0 |"]
    assert mujoco_tasks.cheetah_markdown({}) == "(no HalfCheetah runs)"
