"""Discrete actions through the whole stack: one-hot actions in the log, tree search and
discrete CEM in the loop, the learned leaf value, resume, determinism and clear refusals."""

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.cli import main
from forethought.config import TrainConfig
from forethought.data import TransitionLog
from forethought.models import DynamicsModel, ModelConfig
from forethought.models.value import ValueConfig
from forethought.planners import PlannerConfig
from forethought.planners.discrete_cem import DiscreteCEM
from forethought.planners.mcts import TreeSearchConfig
from forethought.trainers import resume, train
from forethought.trainers.run_dir import RunDir
from helpers import tiny_config

TINY_TREE = TreeSearchConfig(simulations=6, rollout_steps=2)


def cartpole(out, planner="mcts", **changes):
    changes = {"mcts": TINY_TREE, **changes}
    return tiny_config(out, env="CartPole-v1", planner=planner, max_episode_steps=40, **changes)


def rows(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if "event" not in x]


@pytest.mark.parametrize("planner", ["mcts", "discrete-cem"])
def test_a_discrete_run_logs_one_hot_actions_and_evaluates(tmp_path, planner):
    result = train(cartpole(tmp_path / "run", planner=planner))
    history = rows(result.run_dir)
    assert [r["policy"] for r in history] == ["random", f"mpc-{planner}", f"mpc-{planner}"]
    assert all(r["eval_return"] >= 1 for r in history) and history[-1]["model_rows"] > 0
    assert all(0 < r["eval_cpu_seconds"] <= r["cpu_seconds"] for r in history)
    log = TransitionLog(RunDir(result.run_dir).log_path, 4, 2)
    _, _, records = log.read(0)
    assert np.array_equal(records.action.sum(axis=1), np.ones(len(records)))  # one-hot rows
    assert set(np.unique(records.action)) == {0.0, 1.0}
    assert (records.action[:, 0] == 1).any() and (records.action[:, 1] == 1).any()


# The exact-resume test below compares two processes of the same seed too (slow tier).
@pytest.mark.slow
def test_same_seed_same_returns_with_tree_search(tmp_path):
    first = rows(train(cartpole(tmp_path / "a")).run_dir)
    second = rows(train(cartpole(tmp_path / "b")).run_dir)
    keys = ("return", "eval_returns", "model_rows", "env_steps")
    assert [[r[k] for k in keys] for r in first] == [[r[k] for k in keys] for r in second]


def test_resume_continues_a_tree_search_run_exactly(tmp_path):
    whole = rows(train(cartpole(tmp_path / "whole", episodes=4)).run_dir)
    train(cartpole(tmp_path / "part", episodes=2))
    resume(tmp_path / "part", given=TrainConfig(episodes=4))
    resumed = rows(tmp_path / "part")
    keys = ("return", "eval_returns", "model_rows")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in whole]
    assert "value" in RunDir(tmp_path / "part").load_checkpoint()  # the leaf value is saved


def test_resume_is_exact_with_the_adaptive_horizon_and_the_imagined_value(tmp_path):
    """Both change what a fit leaves behind (the discount of the tree and the value; a
    distilled policy and imagined targets drawn from the run's random state)."""
    tree = dataclasses.replace(TINY_TREE, discount=0.9, adaptive_horizon=2.0, rollout_steps=0)
    value = ValueConfig(imagined_horizon=20)
    whole = rows(train(cartpole(tmp_path / "whole", episodes=4, mcts=tree, value=value)).run_dir)
    train(cartpole(tmp_path / "part", episodes=2, mcts=tree, value=value))
    resume(tmp_path / "part", given=TrainConfig(episodes=4))
    keys = ("return", "eval_returns", "model_rows")
    assert [[r[k] for k in keys] for r in rows(tmp_path / "part")] == [
        [r[k] for k in keys] for r in whole
    ]
    # Episodes of 9-40 steps: the horizon is 18-80 steps, above 0.9's 10.
    assert 0.94 < RunDir(tmp_path / "part").load_checkpoint()["tree_discount"] < 0.99
    assert all(0.94 < r["tree_discount"] < 0.99 for r in whole)  # fitted after each episode


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "CartPole-v1", "--planner", "icem"], "--planner mcts or --planner discrete-cem"),
        (["--env", "Pendulum-v1", "--planner", "mcts"], "use --planner icem, cem or mppi"),
        (["--env", "CartPole-v1", "--algo", "sac"], "use --algo dqn or ppo"),
    ],
)
def test_wrong_action_space_is_one_line_naming_what_to_use(tmp_path, capsys, args, message):
    code = main(["train", *args, "--out", str(tmp_path / "run"), "--quiet"])
    out = capsys.readouterr().out.strip()
    assert code == 2 and message in out and len(out.splitlines()) == 1, out
    assert not (tmp_path / "run").exists()


def test_multidiscrete_actions_are_refused(tmp_path, capsys):
    gym.register(
        "forethought-test/MultiDiscrete-v0",
        entry_point=lambda: _MultiDiscreteEnv(),
        max_episode_steps=10,
    )
    code = main(["train", "--env", "forethought-test/MultiDiscrete-v0", "--planner", "mcts",
                 "--out", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    assert code == 2 and "MultiDiscrete action space" in capsys.readouterr().out


class _MultiDiscreteEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.MultiDiscrete([2, 3])


def test_discrete_cem_finds_the_best_sequence_of_a_known_objective():
    """Score = number of steps whose action equals a hidden target sequence."""
    target = torch.tensor([2, 0, 1, 1, 2, 0])
    planner = DiscreteCEM(
        PlannerConfig(horizon=6, population=200, elites=20, iterations=5), torch.zeros(3),
        torch.ones(3),
    )  # fmt: skip

    def matches(candidates):  # B x P x H x 3 one-hot
        return (candidates.argmax(-1) == target).float().sum(-1)

    result = planner.plan(matches, batch=4, generator=torch.Generator().manual_seed(0))
    assert (result.actions.argmax(-1) == target).all()
    assert torch.equal(result.score, torch.full((4,), 6.0))


def test_tree_search_agent_acts_with_one_hot_actions_for_a_batch():
    from forethought.agents.tree import TreeSearchAgent
    from forethought.tasks import get_task

    model = DynamicsModel(4, 2, ModelConfig(ensemble_size=2, hidden_size=8))
    agent = TreeSearchAgent(model, get_task("CartPole-v1"), TreeSearchConfig(simulations=4))
    actions = agent.act(np.zeros((3, 4), np.float32))
    assert actions.shape == (3, 2) and np.array_equal(actions.sum(1), np.ones(3))
    assert agent.compute.model_rows > 0


def test_explain_replays_a_tree_search_decision(tmp_path):
    from forethought.tools.explain import ExplainArgs, explain

    run = train(cartpole(tmp_path / "run")).run_dir
    history = rows(run)
    step = history[0]["env_steps"] + 3  # the fourth step of the first planned episode
    result = explain(ExplainArgs(run_dir=run, step=step))
    assert result.reproduced, result.summary
    visits = [r["visits"] for r in result.report["root_actions"]]
    assert sum(visits) == TINY_TREE.simulations and result.plot_path.stat().st_size > 5_000


TREE_ARGS = [
    "--env", "CartPole-v1", "--planner", "mcts", "--max-episode-steps", "40",
    "--eval-episodes", "2", "--model.ensemble-size", "2", "--model.hidden-size", "16",
    "--model.num-hidden-layers", "1", "--fit.max-epochs", "5", "--mcts.simulations", "6",
    "--rollout.particles", "2", "--episodes", "4", "--quiet",
]  # fmt: skip
RECORD = 8 * (2 + 4 + 2 + 1 + 4 + 2)  # episode, t, obs, one-hot action, reward, next_obs, flags


@pytest.mark.slow  # ~36 s; test_resume_continues_a_tree_search_run_exactly stays in the default tier
def test_killed_tree_search_run_resumes_to_the_uninterrupted_result(tmp_path):
    from helpers import kill_when, start_cli

    reference, out = tmp_path / "reference", tmp_path / "run"
    assert start_cli(["--out", str(reference), *TREE_ARGS]).wait(timeout=300) == 0
    log = out / "transitions.bin"
    proc = start_cli(["--out", str(out), *TREE_ARGS])
    for records in (25, 70):  # in a planned episode: after the first value fit, then later
        kill_when(proc, lambda n=records: log.exists() and log.stat().st_size >= n * RECORD,
                  f"{records} records")  # fmt: skip
        proc = start_cli(["--resume", str(out)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    keys = ("episode", "env_steps", "return", "eval_returns", "model_rows")
    assert [[r[k] for k in keys] for r in rows(out)] == [
        [r[k] for k in keys] for r in rows(reference)
    ]
    want, got = RunDir(reference).load_checkpoint(), RunDir(out).load_checkpoint()
    for key, value in want["value"].items():
        assert torch.equal(got["value"][key], value), key


@pytest.mark.slow  # ~20 s; needs gymnasium[box2d] (the box2d extra)
def test_lunar_lander_plans_with_learned_reward_and_termination_heads(tmp_path):
    """No known functions ship for LunarLander-v3: the ensemble's reward and termination heads
    score the tree's edges, and waves of simulations run through the learned model."""
    pytest.importorskip("Box2D")
    tree = TreeSearchConfig(simulations=8, parallel_simulations=4, rollout_steps=2)
    config = tiny_config(tmp_path / "run", env="LunarLander-v3", planner="mcts", mcts=tree)
    result = train(config)
    history = rows(result.run_dir)
    assert [r["policy"] for r in history] == ["random", "mpc-mcts", "mpc-mcts"]
    assert all(np.isfinite(r["eval_return"]) for r in history) and history[-1]["model_rows"] > 0
    weights = RunDir(result.run_dir).load_checkpoint()["model"]
    assert weights["target_mean"].shape == (8 + 1,)  # next-state change and the reward
    last = max(k for k in weights if k.startswith("net.layers.") and k.endswith(".bias"))
    assert weights[last].shape[-1] == 2 * (8 + 1) + 1  # mean, log-variance, termination logit
