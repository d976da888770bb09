"""The run loop end to end on tiny settings: files, determinism, and errors a user can cause."""

import json

import gymnasium as gym
import numpy as np
import pytest

from forethought.cli import main
from forethought.data import ReplayBuffer, TransitionLog
from forethought.trainers import train
from forethought.trainers.run_dir import RunDir
from helpers import TINY_ARGS, tiny_config


def test_run_writes_its_directory(tmp_path):
    result = train(tiny_config(tmp_path / "run"))
    run = RunDir(result.run_dir)
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert [r["episode"] for r in rows] == [0, 1, 2]
    assert [r["env_steps"] for r in rows] == [30, 60, 90]
    assert rows[0]["policy"] == "random" and rows[1]["policy"] == "mpc-icem"
    for key in (
        "return",
        "eval_return",
        "holdout_error",
        "fit_seconds",
        "ms_per_action",
        "model_rows",
    ):
        assert key in rows[-1]
    assert len(rows[-1]["eval_returns"]) == 2
    assert run.plot_path.stat().st_size > 10_000
    config = json.loads(run.config_path.read_text())
    assert config["planning"]["horizon"] == 5 and config["env"] == "Pendulum-v1"
    checkpoint = run.load_checkpoint()
    assert checkpoint["progress"]["episode"] == 3
    assert ReplayBuffer.from_state_dict(checkpoint["buffer"]).total_added == 90


def test_same_seed_same_returns(tmp_path):
    a = train(tiny_config(tmp_path / "a", seed=3))
    b = train(tiny_config(tmp_path / "b", seed=3))
    c = train(tiny_config(tmp_path / "c", seed=4))
    returns = lambda r: [(row["return"], row["eval_return"]) for row in r.history]  # noqa: E731
    assert returns(a) == returns(b)
    assert returns(a) != returns(c)


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--episodes", "1", "--out", str(out), *TINY_ARGS]) == 0
    assert main(["train", "--episodes", "1", "--out", str(out), *TINY_ARGS]) == 2
    assert "--resume" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        (["--env", "CartPole-v1"], "Discrete action space"),
        (["--planning.horizon", "0"], "planning.horizon"),
        (["--planning.elites", "50"], "planning.elites"),
        (["--rollout.particles", "3"], "rollout.particles"),
        (["--warmup-episodes", "0"], "--warmup-episodes"),
        (["--device", "cuda:7"], "device"),
        (["--device", "banana"], "device"),
        (["--explore-std", "-0.1"], "--explore-std: must be 0 (off) or more"),
        (["--algo", "sac", "--explore-std", "0.1"], "--explore-std: applies to the planner's"),
        (["--env", "CartPole-v1", "--planner", "mcts", "--explore-std", "0.1"], "continuous"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    code = main(["train", "--out", str(tmp_path / "run"), *TINY_ARGS, *args])
    out = capsys.readouterr().out
    assert code == 2
    assert message in out and "Traceback" not in out


class NaNAfterFiveSteps(gym.Wrapper):
    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.t = 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == 5:
            obs = np.array([np.nan, 0.0, 0.0], dtype=np.float32)
        return obs, reward, terminated, truncated, info


def test_nan_observation_is_refused_naming_the_step(tmp_path, capsys):
    gym.register(
        "ForethoughtTest/NaNPendulum-v0", entry_point=NaNAfterFiveSteps, max_episode_steps=30
    )
    code = main(
        [
            "train",
            "--out",
            str(tmp_path / "run"),
            *TINY_ARGS,
            "--env",
            "ForethoughtTest/NaNPendulum-v0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 2
    assert "non-finite observation" in out and "environment step 5" in out


def test_step_schedule_evaluations_are_events(tmp_path):
    result = train(tiny_config(tmp_path / "run", episodes=2, eval_every_steps=20))
    events = [r for r in result.history if r.get("event") == "evaluation"]
    assert [e["env_steps"] for e in events] == [20, 40]  # 60 ends the run: evaluated there
    assert all(len(e["eval_returns"]) == 2 for e in events)
    evaluated = [r["env_steps"] for r in result.history if r.get("eval_return") is not None]
    assert sorted(evaluated) == sorted(set(evaluated)) and 60 in evaluated  # once per step


def test_explore_std_perturbs_training_actions_and_not_evaluation(tmp_path):
    def run(name: str, std: float):
        result = train(tiny_config(tmp_path / name, seed=3, episodes=2, explore_std=std))
        _, _, records = TransitionLog(RunDir(result.run_dir).log_path, 3, 1).read(0)
        return result.history, records.action

    plain_rows, plain = run("plain", 0.0)
    noisy_rows, noisy = run("noisy", 0.3)
    again_rows, again = run("again", 0.3)
    warmup = 30  # episode 0 acts at random, the same in all three
    assert np.array_equal(plain[:warmup], noisy[:warmup])
    assert np.abs(noisy[warmup:] - plain[warmup:]).max() > 0.1  # the planned episode
    assert np.abs(noisy).max() <= 2.0  # clipped to Pendulum's bounds
    # Evaluation after episode 0 acts with the same model and no noise.
    assert noisy_rows[0]["eval_return"] == plain_rows[0]["eval_return"]
    returns = lambda rows: [(r["return"], r["eval_return"]) for r in rows]  # noqa: E731
    assert np.array_equal(noisy, again) and returns(noisy_rows) == returns(again_rows)
