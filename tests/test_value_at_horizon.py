"""--value.at-horizon: a shooting planner adds discount^H x V(s_H) to each imagined return, with
V fitted on the real transitions as tree search fits it. Known optimum with the true value, the
fitted value saved and used end to end, and the settings it refuses."""

import json

import numpy as np
import pytest
import torch

from forethought.agents.mpc import MPCAgent
from forethought.config import TrainConfig
from forethought.errors import ConfigError
from forethought.models.value import ValueConfig
from forethought.rollout import RolloutConfig
from forethought.storage import load_torch
from forethought.tools.explain import ExplainArgs, explain
from forethought.trainers import train
from helpers import tiny_config
from test_planning_with_critic import GAMMA, lqr_task_and_planner, riccati
from test_rollout import OffsetEnsemble


class TrueStateValue(torch.nn.Module):
    """V*(x) = -P x^2 of the discounted scalar LQR x' = x + a, reward -(x^2 + a^2)."""

    def forward(self, obs):
        return -riccati() * obs[..., 0] ** 2


def lqr_agent(state_value) -> MPCAgent:
    task, planner = lqr_task_and_planner()
    return MPCAgent(
        OffsetEnsemble(1),  # one member, offset 0: exactly x' = x + a
        planner,
        task,
        RolloutConfig(particles=2, sample=False, discount=GAMMA),
        seed=0,
        track_disagreement=False,
        state_value=state_value,
    )


def test_a_horizon_one_plan_with_the_true_value_is_optimal():
    p = riccati()
    x = np.array([[1.0], [-0.5]], np.float32)
    optimal = -GAMMA * p / (1.0 + GAMMA * p) * x[:, 0]  # argmax of -(x^2+a^2) + gamma V*(x+a)
    np.testing.assert_allclose(lqr_agent(TrueStateValue()).act(x)[:, 0], optimal, atol=0.02)
    np.testing.assert_allclose(lqr_agent(None).act(x)[:, 0], 0.0, atol=0.02)  # myopic
    assert np.all(np.abs(optimal) > 0.25)


def test_a_value_not_yet_trusted_is_left_out_of_the_plan():
    """--value.trust: until the value has predicted real transitions, plans are scored without
    it (the myopic plan); once it has, with it."""
    value = TrueStateValue()
    value.register_buffer("trusted", torch.tensor(False))
    x = np.array([[1.0]], np.float32)
    np.testing.assert_allclose(lqr_agent(value).act(x)[:, 0], 0.0, atol=0.02)
    value.trusted.fill_(True)
    p = riccati()
    assert lqr_agent(value).act(x)[0, 0] == pytest.approx(-GAMMA * p / (1 + GAMMA * p), abs=0.02)


def test_discrete_cem_fits_and_saves_the_value_it_plans_with(tmp_path):
    config = tiny_config(
        tmp_path / "run", env="CartPole-v1", planner="discrete-cem", episodes=3,
        max_episode_steps=None, value=ValueConfig(at_horizon=True, rounds=3),
        rollout=RolloutConfig(particles=2, discount=0.95),
    )  # fmt: skip
    result = train(config)
    assert len([r for r in result.history if "event" not in r]) == 3
    checkpoint = load_torch(tmp_path / "run" / "checkpoint.pt")
    snapshot = load_torch(tmp_path / "run" / "snapshots" / "episode_2.pt")
    assert "value" in checkpoint and "value" in snapshot
    fitted = checkpoint["value"]["net.0.weight"]
    assert not torch.equal(fitted, snapshot["value"]["net.0.weight"])  # refitted after episode 2
    # explain replays a late decision with that episode's value and shows what it added.
    last_step = result.history[-1]["env_steps"] - 2
    explained = explain(ExplainArgs(run_dir=config.out, step=last_step, top_k=2))
    assert explained.reproduced and "valued beyond its horizon" in explained.summary
    report = json.loads(explained.json_path.read_text())
    assert len(report["chosen"]["member_values_at_horizon"]) == 2  # tiny_config's members
    assert all(np.isfinite(plan["value_at_horizon"]) for plan in report["runners_up"])


def test_explain_leaves_out_a_value_the_plan_did_not_trust(tmp_path):
    config = tiny_config(
        tmp_path / "run", env="CartPole-v1", planner="discrete-cem", episodes=2,
        max_episode_steps=None, value=ValueConfig(at_horizon=True, rounds=3, trust=0.5),
        rollout=RolloutConfig(particles=2, discount=0.95),
    )  # fmt: skip
    result = train(config)
    first = result.history[0]
    assert not first["value_trusted"] and first["value_r2"] is None
    # Episode 1 was planned before the value's first check (after it): plans without V.
    explained = explain(ExplainArgs(run_dir=config.out, step=first["env_steps"] + 2, top_k=2))
    assert explained.reproduced and "valued beyond its horizon" not in explained.summary
    report = json.loads(explained.json_path.read_text())
    assert "value_at_horizon" not in report["chosen"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"planner": "mcts"}, "shooting planners"),
        ({"algo": "loop", "env": "InvertedPendulum-v5"}, "shooting planners"),
        ({"rollout": RolloutConfig(discount=1.0)}, "--rollout.discount below 1"),
        ({"value": ValueConfig(trust=0.5)}, "gates the state value at a shooting planner's"),
        ({"value": ValueConfig(trial_steps=5)}, r"value\.trial-steps: gates the state value"),
        ({"value": ValueConfig(at_horizon=True, trial_steps=-1)}, r"trial-steps: must be 0 or"),
        ({"value": ValueConfig(at_horizon=True, trial_starts=0)}, r"trial-starts: must be at"),
    ],
)
def test_it_is_refused_where_it_cannot_apply(changes, message):
    base = {"env": "CartPole-v1", "planner": "discrete-cem", "value": ValueConfig(at_horizon=True),
            "rollout": RolloutConfig(discount=0.98)}  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**(base | changes)).validate()


class QuadraticValue(torch.nn.Module):
    """sign x P x^2: the true LQR value (sign -1), or one that prizes being far off (+1)."""

    def __init__(self, sign: float):
        super().__init__()
        self.sign = sign
        self.register_buffer("trusted", torch.tensor(False))
        self.register_buffer("obs_mean", torch.zeros(1))

    def forward(self, obs):
        return self.sign * riccati() * obs[..., 0] ** 2


def test_the_trial_in_the_model_tells_a_value_that_helps_the_plans_from_one_that_hurts():
    """--value.trial-steps: planning closed-loop in the model with the true value steers the
    state to 0 (the myopic planner never moves), a value prizing distance drives it away."""
    from forethought.trainers.value_trial import planning_gain
    from forethought.types import TransitionBatch

    n = 6
    obs = np.linspace(-1.5, 1.5, n, dtype=np.float32).reshape(n, 1)
    zeros = np.zeros(n, np.float32)
    data = TransitionBatch(obs, obs * 0, zeros, obs, zeros.astype(bool), zeros.astype(bool))
    gains = {}
    for sign in (-1.0, 1.0):
        value = QuadraticValue(sign)
        task = lqr_agent(None).task
        gains[sign], rows = planning_gain(
            lambda seed, value=value: lqr_agent(value), OffsetEnsemble(1), task, value, data,
            steps=8, starts=4, seed=0,
        )  # fmt: skip
        assert not value.trusted  # left as it was
        assert rows > 0
    # Myopic: -8 x^2 per start, mean x^2 of the starts drawn; with V* the state goes to ~0.
    assert gains[-1.0] > 1.0
    assert gains[1.0] < -1.0
