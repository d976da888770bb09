"""`forethought explain`: replaying a run's decision reproduces the action it took, and what it
shows is the planner's own work; bad input is one line."""

import json
import shutil

import numpy as np
import pytest

from forethought.cli import main
from forethought.tools.explain import ExplainArgs, explain
from forethought.trainers import train
from helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    train(tiny_config(out, episodes=3))
    return out


@pytest.mark.parametrize("step", [30, 47, 89])
def test_explain_reproduces_the_action_the_run_took(run_dir, step):
    result = explain(ExplainArgs(run_dir=run_dir, step=step, top_k=3))
    assert result.reproduced, (result.action, result.logged_action)
    assert result.episode == step // 30 and result.t == step % 30
    report = json.loads(result.json_path.read_text())
    chosen = report["chosen"]
    assert np.allclose(chosen["first_action"], report["action"])  # the plan begins with the act
    assert len(report["runners_up"]) == 3 and len(chosen["epistemic"]) == 5  # horizon 5
    assert report["real"]["reached_the_logged_state"]
    assert result.plot_path.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "90"], "--step: 90 is outside the run's log, which holds steps 0 to 89"),
        (["--step", "-1"], "--step: -1 is outside the run's log"),
        (["--step", "12"], "is in warm-up episode 0"),
        (["--top-k", "-2"], "--top-k: must be 0 or more"),
    ],
)
def test_bad_steps_are_one_line(run_dir, capsys, args, message):
    assert main(["explain", str(run_dir), *args]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and message in out and len(out.strip().splitlines()) == 1


def test_a_run_without_a_model_or_not_a_run_is_one_line(run_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    (bare / "checkpoint.pt").unlink()
    assert main(["explain", str(bare), "--step", "40"]) == 2
    assert "has no checkpoint yet" in capsys.readouterr().out
    assert main(["explain", str(tmp_path), "--step", "40"]) == 2
    assert "not a run directory" in capsys.readouterr().out
    shutil.rmtree(bare / "snapshots")
    (bare / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    assert main(["explain", str(bare), "--step", "40"]) == 2
    assert "no snapshot of the model episode 1 started with" in capsys.readouterr().out


@pytest.mark.slow
def test_explain_reproduces_step_250_of_the_demo_run(tmp_path):
    from forethought.cli import DemoArgs, demo_config

    out = tmp_path / "demo"
    train(demo_config(DemoArgs(out=out, quiet=True)))
    result = explain(ExplainArgs(run_dir=out, step=250))
    assert result.reproduced and (result.episode, result.t) == (1, 50)
