"""Policy-guided planning and the switching hybrid, built from a tiny MBPO run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.agents.guided import GuidedMPCAgent, SwitchingAgent
from forethought.cli import main
from forethought.tools.evaluate import (
    EvaluateArgs,
    _load,
    build_controllers,
    evaluate_controllers,
)
from forethought.trainers import train
from test_mbpo import tiny_mbpo
from test_model_free import sac_config


@pytest.fixture(scope="module")
def mbpo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guided") / "run"
    train(tiny_mbpo(out, rollout_min_length=1, rollout_max_length=1))
    return out


def controllers(run: Path, **changes):
    args = EvaluateArgs(run_dir=run, quiet=True, **changes)
    config, parts = _load(args, None)
    return build_controllers(args, config, parts)


def test_proposals_follow_the_policy_and_value_ignores_ended_particles(mbpo_run):
    guided: GuidedMPCAgent = controllers(mbpo_run, guided_horizon=4, proposals=3)["guided"]
    obs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    with torch.inference_mode():
        proposals = guided.propose(obs)
        assert proposals.shape == (2, 3, 4, 1)
        # Proposal 0 is the policy's mean action from the real state.
        np.testing.assert_allclose(proposals[:, 0, 0], guided.prior.act(obs), rtol=1e-5)
        low, high = guided.prior.low, guided.prior.high
        assert bool(((proposals >= low) & (proposals <= high)).all())

        class Ended:  # two problems, one candidate, two particles; one particle terminated
            final_state = torch.zeros(2, 1, 2, 3)
            final_alive = torch.tensor([[[True, False]], [[False, False]]])

        value = guided.terminal_value(Ended)
        v0 = guided.prior.value(torch.zeros(1, 3))
        expected = guided.prior.gamma**4 * v0 / 2
        np.testing.assert_allclose(value[0, 0], expected[0], rtol=1e-5)
        assert value[1, 0] == 0


def test_an_anchored_plan_starts_at_the_actor_and_stays_near_it(mbpo_run):
    """--loop.anchor: the search starts at the actor's mean trajectory, so with a narrow
    sampling distribution the executed action is the actor's; unanchored, it starts at the
    action box's centre and stays there."""
    from dataclasses import replace

    guided: GuidedMPCAgent = controllers(mbpo_run, guided_horizon=4, proposals=1)["guided"]
    guided.planner.config = replace(guided.planner.config, init_std=1e-4, iterations=1)
    obs = np.array([[1.0, 0.0, -4.0], [-1.0, 0.0, 4.0], [0.0, 1.0, 0.0]], np.float32)
    actor = guided.prior.act(torch.as_tensor(obs)).numpy()
    assert np.abs(actor).max() > 0.05  # the two cases differ on some row
    guided.anchor = True
    np.testing.assert_allclose(guided.act(obs), actor, atol=1e-2)
    guided.anchor, guided._plans, guided._elites = False, None, None
    guided.n_proposals = 0  # nothing but the search from the centre
    np.testing.assert_allclose(guided.act(obs), np.zeros_like(actor), atol=1e-2)


def test_a_sampled_anchor_starts_at_the_drawn_actor_trajectory(mbpo_run):
    """--loop.anchor-sampled: with a narrow search the executed action is the first action of
    the second proposal, drawn from the actor with the agent's own generator."""
    from dataclasses import replace

    guided: GuidedMPCAgent = controllers(mbpo_run, guided_horizon=4, proposals=2)["guided"]
    guided.planner.config = replace(guided.planner.config, init_std=1e-4, iterations=1)
    guided.anchor = guided.sampled_anchor = True
    obs = np.array([[1.0, 0.0, -4.0], [-1.0, 0.0, 4.0], [0.0, 1.0, 0.0]], np.float32)
    state = guided.generator.get_state()
    with torch.inference_mode():
        drawn = guided.propose(torch.as_tensor(obs))[:, 1, 0].numpy()
    guided.generator.set_state(state)
    np.testing.assert_allclose(guided.act(obs), drawn, atol=1e-2)
    mean = guided.prior.act(torch.as_tensor(obs)).numpy()
    assert np.abs(drawn - mean).max() > 0.05  # a draw, not the actor's mean


def test_anchor_needs_a_proposal():
    from forethought.config import LoopConfig
    from forethought.errors import ConfigError

    with pytest.raises(ConfigError, match=r"loop\.anchor"):
        LoopConfig(anchor=True, proposals=0).validate()


def test_switching_agent_consults_the_planner_only_beyond_its_threshold(mbpo_run):
    switch: SwitchingAgent = controllers(mbpo_run)["switch"]
    obs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 8.0]], np.float32)
    policy_only = switch.prior.act(torch.as_tensor(obs)).numpy()
    switch.threshold = float("inf")  # never unfamiliar: exactly the policy
    np.testing.assert_array_equal(switch.act(obs), policy_only)
    assert switch.consulted == 0
    switch.threshold = -1.0  # always unfamiliar: every row planned (rows 3 and 7 of a batch)
    switch.act(obs, np.array([3, 7]))
    assert switch.consulted == 2


def test_evaluate_command_writes_every_controller(mbpo_run, capsys):
    assert main(["evaluate", str(mbpo_run), "--episodes", "2", "--mpc-horizon", "5"]) == 0
    report = json.loads((mbpo_run / "controllers.json").read_text())
    for name in ("policy", "mpc", "guided", "switch"):
        assert np.isfinite(report[name]["eval_return"]) and report[name]["ms_per_action_median"] > 0
    assert 0.0 <= report["switch"]["planner_share"] <= 1.0
    assert "guided" in capsys.readouterr().out


def test_evaluate_refuses_a_run_that_is_not_mbpo(tmp_path, capsys):
    from helpers import tiny_config

    train(tiny_config(tmp_path / "mpc", episodes=1))
    assert main(["evaluate", str(tmp_path / "mpc")]) == 2
    assert "--algo mbpo" in capsys.readouterr().out
    with pytest.raises(Exception, match="switch-quantile"):
        evaluate_controllers(EvaluateArgs(run_dir=tmp_path / "mpc", switch_quantile=1.5))


def test_explain_an_mbpo_step_shows_policy_critic_and_planners(mbpo_run, capsys):
    from forethought.tools.explain import ExplainArgs, explain

    assert main(["explain", str(mbpo_run), "--step", "150"]) == 0
    assert "the switching hybrid" in capsys.readouterr().out
    result = explain(ExplainArgs(run_dir=mbpo_run, step=150))
    report = result.report
    assert len(report["policy_action"]) == 1 and np.isfinite(report["critic_value"])
    assert report["switch_hands_to_planner"] == (
        report["disagreement_on_policy_action"] > report["switching_threshold"]
    )
    assert len(report["guided"]["epistemic"]) == 5  # the guided planner's horizon
    assert result.plot_path.exists() and result.json_path.exists()
    assert main(["explain", str(mbpo_run), "--step", "5000"]) == 2
    assert "outside the run's replay buffer" in capsys.readouterr().out


def test_evaluate_with_a_shield_reports_costs_and_overrides(mbpo_run, capsys):
    args = ["--episodes", "2", "--controllers", "policy", "--shield", "pendulum-zone"]
    assert main(["evaluate", str(mbpo_run), *args]) == 0
    report = json.loads((mbpo_run / "controllers.json").read_text())
    assert set(report) >= {"policy", "shielded"}
    for name in ("policy", "shielded"):
        assert len(report[name]["eval_costs"]) == 2 and report[name]["eval_cost"] >= 0
    assert 0.0 <= report["shielded"]["override_share"] <= 1.0
    assert all(o["constraint"] == "pendulum-zone" for o in report["shielded"]["overrides"])
    assert main(["evaluate", str(mbpo_run), "--shield", "cartpole-position"]) == 2
    assert "is defined for forethought/ContinuousCartPole-v0" in capsys.readouterr().out


@pytest.mark.parametrize("planner, horizon", [("guided", 3), ("mpc", 7)])
def test_the_shield_hands_overrides_to_the_chosen_constrained_planner(mbpo_run, planner, horizon):
    shielded = controllers(
        mbpo_run, controllers=("policy",), shield="pendulum-zone", shield_planner=planner,
        guided_horizon=3, mpc_horizon=7,
    )["shielded"]  # fmt: skip
    fallback = shielded.planner
    assert isinstance(fallback, GuidedMPCAgent) == (planner == "guided")
    assert fallback.planner.config.horizon == horizon
    assert fallback.safety is not None and fallback.safety.constraint == "pendulum-zone"


def test_a_sac_run_gets_a_model_fitted_on_its_replay_buffer_and_a_shield(tmp_path, capsys):
    from forethought.config import FitConfig, ModelConfig
    from forethought.tools.evaluate import SAC_MODEL

    run = tmp_path / "sac"
    model = ModelConfig(ensemble_size=2, hidden_size=32, num_hidden_layers=2)
    train(sac_config(run, steps=400, model=model, fit=FitConfig(max_epochs=30)))
    args = EvaluateArgs(run_dir=run, quiet=True, controllers=("policy",), shield="pendulum-zone")
    config, parts = _load(args, None)
    # Every real transition, in order: within an episode each next state is the next row's state.
    real = parts.real_obs
    assert len(real) == 400
    transitions = parts.sac.replay_buffer.next_observations[:400, 0]
    np.testing.assert_array_equal(transitions[:49], real[1:50])  # episodes of 50 steps
    # The fitted ensemble predicts the run's own transitions better than an unfitted one.
    fresh = _load(args, None)[1].model  # read back from RUN_DIR/evaluate_model.pt
    assert (run / SAC_MODEL).exists()
    obs = torch.as_tensor(real[:300])
    action = torch.as_tensor(parts.sac.policy.unscale_action(
        parts.sac.replay_buffer.actions[:300, 0]))  # fmt: skip
    target = torch.as_tensor(transitions[:300])
    from forethought.trainers.mbpo import attach

    unfitted = attach(config, parts.sac.action_space, 3, "cpu").dynamics.eval()
    with torch.inference_mode():
        errors = [
            float((m.predict(obs.expand(2, -1, -1), action.expand(2, -1, -1)).next_obs_mean
                   - target).square().mean())
            for m in (parts.model, fresh, unfitted)
        ]  # fmt: skip
    assert errors[0] == errors[1] and errors[0] < errors[2] / 10
    assert main(["evaluate", str(run), "--episodes", "2", "--controllers", "policy",
                 "--shield", "pendulum-zone"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "fitting" not in out and "shielded" in out  # the saved model, not a second fit
    report = json.loads((run / "controllers.json").read_text())
    assert 0.0 <= report["shielded"]["override_share"] <= 1.0
