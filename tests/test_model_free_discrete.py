"""The model-free baselines on Discrete action spaces: SB3's DQN (Discrete only) and PPO (either
kind) with rl-baselines3-zoo's CartPole settings, the same run directory, evaluation and exact
resume as SAC on Pendulum; the continuous-only methods and DQN refuse the wrong space in one line.
"""

import json
import random
import re
import time

import pytest
import torch

from forethought.cli import main
from forethought.config import TrainConfig
from forethought.errors import ConfigError
from forethought.trainers import train
from forethought.trainers.sb3 import hyperparameters
from helpers import kill_when, start_cli
from test_resume_sb3 import assert_same_buffer, final_state, rewritten, rows


def cartpole(out, **changes):
    base = dict(
        env="CartPole-v1",
        algo="dqn",
        steps=1200,
        eval_every_steps=400,
        eval_episodes=2,
        out=out,
        quiet=True,
        threads=1,
    )
    return TrainConfig(**{**base, **changes})


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def numbers(result):  # every metric but the wall-clock one
    return [
        {k: v for k, v in r.items() if k not in ("eval_seconds", "cpu_seconds")}
        for r in result.history
    ]


def test_dqn_on_cartpole_writes_the_run_directory(tmp_path):
    # The zoo's CartPole DQN acts at random for 1000 steps, then trains 128 gradient steps at
    # the end of every 256-step rollout; SB3 ends a rollout whole, so the run stops at 1280.
    result = train(cartpole(tmp_path / "dqn"))
    got = rows_of(result.run_dir)
    assert [r["env_steps"] for r in got] == [400, 800, 1200, 1280]
    assert all(r["policy"] == "dqn" and len(r["eval_returns"]) == 2 for r in got)
    assert [r["eval_reused"] for r in got[:2]] == [False, True]  # no update before 1000 steps
    assert got[-1]["policy_updates"] > got[-2]["policy_updates"] > 0
    for name in ("config.json", "checkpoint.pt", "learning_curve.png"):
        assert (result.run_dir / name).exists()


def test_ppo_on_cartpole_writes_the_run_directory(tmp_path):
    # The zoo's CartPole PPO: 8 envs x 32 steps per rollout, 20 epochs, linear schedules.
    settings = hyperparameters("ppo", "CartPole-v1")
    assert settings["learning_rate"](0.5) == pytest.approx(0.0005)  # "lin_0.001"
    assert settings["clip_range"](0.25) == pytest.approx(0.05)  # "lin_0.2"
    result = train(cartpole(tmp_path / "ppo", algo="ppo", steps=500, eval_every_steps=200))
    got = rows_of(result.run_dir)
    assert [r["env_steps"] for r in got] == [200, 400, 512]
    assert all(r["policy"] == "ppo" and len(r["eval_returns"]) == 2 for r in got)
    assert [r["policy_updates"] for r in got] == [0, 20, 40]  # 20 epochs after each rollout
    for name in ("config.json", "checkpoint.pt", "learning_curve.png"):
        assert (result.run_dir / name).exists()


@pytest.mark.parametrize(
    "algo, env, wanted, instead",
    [
        ("dqn", "Pendulum-v1", "Discrete", "--algo sac, td3 or ppo"),
        ("sac", "CartPole-v1", "continuous (Box)", "--algo dqn or ppo"),
    ],
)
def test_the_wrong_action_space_is_a_one_line_error(tmp_path, capsys, algo, env, wanted, instead):
    with pytest.raises(
        ConfigError, match=re.escape(f"'{algo}' acts in {wanted}") + ".*" + re.escape(instead)
    ):
        train(cartpole(tmp_path / "api", algo=algo, env=env))
    out = tmp_path / "cli"
    assert main(["train", "--algo", algo, "--env", env, "--out", str(out), "--quiet"]) == 2
    printed = capsys.readouterr().out.strip()
    assert instead in printed and len(printed.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "api").exists()  # nothing written


# DQN runs through the same SB3 seeding as SAC (slow tier).
@pytest.mark.slow
def test_dqn_same_seed_gives_the_same_numbers(tmp_path):
    first = numbers(train(cartpole(tmp_path / "a")))
    assert first and first[-1]["policy_updates"] > 0
    assert numbers(train(cartpole(tmp_path / "b"))) == first
    assert numbers(train(cartpole(tmp_path / "c", seed=1))) != first


@pytest.mark.slow  # ~45 s; the same SB3 checkpointing as sac, whose kill test stays in the default tier
def test_dqn_killed_and_resumed_equals_the_uninterrupted_run(tmp_path):
    # 2048 steps, an evaluation every 256: random actions to 1000 steps, then epsilon-greedy with
    # 128 gradient steps per 256-step rollout and a target update every 10 steps. The third kill
    # falls after learning has started. The reference runs first (one training at a time);
    # about 20 s in all.
    args = [
        "--algo", "dqn", "--env", "CartPole-v1", "--steps", "2048", "--eval-every-steps", "256",
        "--eval-episodes", "2", "--threads", "1", "--quiet",
    ]  # fmt: skip
    reference = start_cli(["--out", str(tmp_path / "reference"), *args])
    assert reference.wait(timeout=120) == 0, reference.stderr.read().decode()
    out, rng = tmp_path / "run", random.Random("dqn")
    second, third = rng.randrange(2, 5), rng.randrange(5, 7)
    kills = [
        ("the first checkpoint was written", lambda new: (out / "checkpoint.pt").exists()),
        (f"{second} evaluations were recorded", lambda new: new() and len(rows(out)) >= second),
        (f"a few ms after evaluation {third}", lambda new: new() and len(rows(out)) >= third
         and (time.sleep(rng.uniform(0, 0.01)) or True)),
    ]  # fmt: skip
    proc, new = start_cli(["--out", str(out), *args]), None
    for what, condition in kills:
        kill_when(proc, lambda c=condition, n=new: c(n), what)
        new = rewritten(out)
        proc = start_cli(["--resume", str(out)])
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()

    want_run, _, want_rows = final_state(tmp_path / "reference")
    run, _, got_rows = final_state(out)
    assert got_rows == want_rows and want_rows[-1]["policy_updates"] > 0
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["event"] for r in events if "event" in r} == {"interrupted"}
    model, want = run.model, want_run.model
    for name in ("num_timesteps", "_n_calls", "_n_updates", "exploration_rate", "_episode_num"):
        assert getattr(model, name) == getattr(want, name), name
    assert_same_buffer(model.replay_buffer, want.replay_buffer)
    for key, value in want.policy.state_dict().items():  # q_net and q_net_target
        assert torch.equal(model.policy.state_dict()[key], value), key
