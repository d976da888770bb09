"""Constraints that veto imagined plans: known costs equal the environment's, a plan that
violates a constraint in the model is vetoed, the fallback acts when every plan is vetoed, and
a constrained run records its costs."""

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents.mpc import MPCAgent
from forethought.cli import main
from forethought.models import DynamicsModel, FitConfig, ModelConfig, ModelTrainer
from forethought.planners import PlannerConfig, make_planner
from forethought.rollout import RolloutConfig
from forethought.tasks import make_env
from forethought.tasks.base import TaskSpec, never_terminates
from forethought.tasks.constraints import CONSTRAINTS, CostWrapper, SafetyConfig
from forethought.trainers import train
from helpers import TINY_ARGS, tiny_config
from test_models import transitions

# Initial internal states that put the next state on both sides of each rule.
STATES = {
    "pendulum-speed": [(th, thd) for th in (-2.0, 0.5, 3.0) for thd in (-7.9, -5.5, 0.0, 5.5, 7.9)],
    "pendulum-zone": [(th, thd) for th in np.linspace(-np.pi, np.pi, 25) for thd in (-1.0, 1.0)],
    "cartpole-position": [(x, xd, 0.0, 0.0) for x in (-1.3, -1.0, -0.5, 0.95, 1.05) for xd in (-1.0, 1.0)],
    "cheetah-velocity": [0.0, 2.0, 6.0, 10.0],  # forward velocities set before the step
}  # fmt: skip


def set_state(env, name, state) -> np.ndarray:
    """Put the environment in `state` after a reset; returns the observation of it."""
    env.reset(seed=0)
    unwrapped = env.unwrapped
    if name == "cheetah-velocity":
        qvel = unwrapped.data.qvel.copy()
        qvel[0] = state
        unwrapped.set_state(unwrapped.data.qpos.copy(), qvel)
        return unwrapped._get_obs()
    unwrapped.state = np.array(state, dtype=np.float64)
    if hasattr(unwrapped, "_get_obs"):
        return unwrapped._get_obs()
    return np.array(state, np.float32)  # the cart-pole observes its state as is


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_known_costs_equal_the_environments(name):
    constraint = CONSTRAINTS[name]
    env = CostWrapper(make_env(constraint.env_id), constraint)
    rng = np.random.default_rng(0)
    seen = set()
    for state in STATES[name]:
        obs = set_state(env, name, state)
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        next_obs, _, _, _, info = env.step(action)
        as_t = lambda x: torch.as_tensor(np.asarray(x, np.float32))  # noqa: E731
        predicted = float(constraint.cost_fn(as_t(obs), as_t(action), as_t(next_obs)))
        assert predicted == info["cost"], (state, next_obs)  # exact: same rule, two readings
        seen.add(info["cost"])
    assert seen == {0.0, 1.0}  # both sides of the rule were tested


def speed_model() -> DynamicsModel:
    """A model of a toy system whose speed (obs[2]) grows by the action: next = obs + (0, 0, a)."""
    rng = np.random.default_rng(0)
    obs = np.column_stack([np.ones(3000), np.zeros(3000), rng.uniform(-9, 9, 3000)])
    action = rng.uniform(-2, 2, (3000, 1))
    next_obs = obs + np.column_stack([np.zeros((3000, 2)), action])
    torch.manual_seed(0)
    model = DynamicsModel(3, 1, ModelConfig(ensemble_size=2, hidden_size=32, probabilistic=False))
    ModelTrainer(model, FitConfig(batch_size=128, max_epochs=60)).fit(
        transitions(obs, action, next_obs), rng
    )
    return model


@pytest.fixture(scope="module")
def model():
    return speed_model()


def agent(model, safety: SafetyConfig | None, horizon: int = 1) -> MPCAgent:
    """MPC on the toy system, rewarded for speed: left alone it accelerates past the limit."""
    speed_reward = lambda obs, action, next_obs: next_obs[..., 2]  # noqa: E731
    task = TaskSpec("toy", speed_reward, never_terminates)
    planner = make_planner(
        "cem",
        PlannerConfig(horizon=horizon, population=64, elites=8, iterations=3),
        np.array([-2.0]),
        np.array([2.0]),
    )
    rollout = RolloutConfig(particles=2, propagation="tsinf")
    return MPCAgent(model, planner, task, rollout, seed=0, safety=safety)


def test_a_plan_that_violates_the_constraint_in_the_model_is_vetoed(model):
    start = np.array([[1.0, 0.0, 5.5]], np.float32)  # the limit is 6 rad/s: a <= 0.5 is safe
    unconstrained = agent(model, None).act(start)[0, 0]
    assert unconstrained > 1.0  # speed pays, so the plain planner accelerates past the limit
    safe = agent(model, SafetyConfig(constraint="pendulum-speed"))
    action = safe.act(start)[0, 0]
    assert action < 0.5 and safe.vetoed_steps == 0  # a feasible plan existed and was taken


@pytest.mark.parametrize("fallback", ["least-violating", "zero"])
def test_the_fallback_acts_when_every_plan_is_vetoed(model, fallback):
    # Every first action leaves it above 6 rad/s; braking hard is back under the limit after
    # one step, accelerating stays over it for all three.
    start = np.array([[1.0, 0.0, 8.5]], np.float32)
    safe = agent(model, SafetyConfig(constraint="pendulum-speed", fallback=fallback), horizon=3)
    action = safe.act(start)[0, 0]
    assert safe.vetoed_steps == 1
    if fallback == "zero":
        assert action == 0.0
    else:
        assert action < -1.0  # least violating: the fewest violating steps, so brake


def test_a_constrained_run_records_its_costs(tmp_path):
    config = tiny_config(tmp_path / "run", safety=SafetyConfig(constraint="pendulum-zone"))
    rows = [r for r in train(config).history if "event" not in r]
    assert all("cost" in r and "eval_cost" in r and "vetoed_steps" in r for r in rows)
    assert all(r["cost"] >= 0 and len(r["eval_costs"]) == 2 for r in rows)
    # explain replays a constrained decision and says which shown plans the constraint vetoes
    from forethought.tools.explain import ExplainArgs, explain

    result = explain(ExplainArgs(run_dir=tmp_path / "run", step=45, top_k=2))
    assert result.reproduced
    for plan in (result.report["chosen"], *result.report["runners_up"]):
        assert len(plan["member_costs"]) == 2 and isinstance(plan["vetoed"], bool)
        assert (plan["veto_reason"] is None) != plan["vetoed"]
    # and the report draws the costs next to the learning curve
    from forethought.tools.report import ReportArgs, report

    page = report(ReportArgs(paths=(tmp_path / "run",), explain=0)).read_text()
    assert "eval_cost" in page and "data:image/png;base64" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--safety.constraint", "nope"], "unknown constraint 'nope'"),
        (["--safety.constraint", "cartpole-position"], "is defined for forethought/ContinuousCartPole-v0"),
        (["--safety.constraint", "pendulum-zone", "--safety.delta", "1.5"], "--safety.delta: must be in [0, 1)"),
        (["--safety.constraint", "pendulum-zone", "--safety.lagrangian"], "--safety.lagrangian: is for sac, td3 and ppo; mpc plans"),
        (["--algo", "mbpo", "--safety.constraint", "pendulum-zone", "--safety.lagrangian"], "mbpo would learn from imagined"),
        (["--algo", "sac", "--safety.lagrangian"], "needs a cost to penalise: add --safety.constraint"),
        (["--algo", "sac", "--safety.constraint", "pendulum-zone", "--safety.cost-limit", "-1"], "--safety.cost-limit: must be 0 or more"),
        (["--algo", "sac", "--safety.constraint", "pendulum-zone", "--safety.lagrange-lr", "0"], "--safety.lagrange-lr: must be above 0"),
        (["--algo", "sac", "--safety.constraint", "pendulum-zone", "--safety.shield"], "--safety.shield: shields MBPO's SAC"),
        (["--algo", "mbpo", "--safety.shield"], "--safety.shield: needs --safety.constraint"),
        (["--algo", "mbpo", "--safety.constraint", "pendulum-zone", "--safety.shield", "--safety.no-veto"], "drop --safety.no-veto"),
        (["--algo", "mbpo", "--safety.constraint", "pendulum-zone", "--safety.shield", "--safety.shield-lookahead", "0"], "--safety.shield-lookahead: must be at least 1"),
    ],
)  # fmt: skip
def test_bad_safety_settings_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "run"), *TINY_ARGS, *args]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and message in out and len(out.strip().splitlines()) == 1


def test_cost_wrapper_is_a_plain_gym_wrapper():
    env = CostWrapper(gym.make("Pendulum-v1"), CONSTRAINTS["pendulum-speed"])
    env.reset(seed=1)
    assert "cost" in env.step(np.zeros(1, np.float32))[-1]


def shield(model, policy):
    from forethought.agents.shield import Shield

    safety = SafetyConfig(constraint="pendulum-speed")
    return Shield(policy, model, agent(model, safety), safety, lookahead=1)


def test_the_shield_overrides_an_unsafe_policy_and_leaves_a_safe_one_alone(model):
    start = np.array([[1.0, 0.0, 5.5], [1.0, 0.0, 0.0]], np.float32)
    reckless = shield(model, lambda obs: torch.full((*obs.shape[:-1], 1), 2.0))
    actions = reckless.act(start)
    assert actions[0, 0] < 0.5  # row 0 would pass 6 rad/s: the constrained planner acted
    assert actions[1, 0] == 2.0  # row 1 stays under the limit: the policy acted
    assert [o["row"] for o in reckless.overrides] == [0]
    assert reckless.overrides[0]["predicted_cost"] > 0.5
    careful = shield(model, lambda obs: torch.full((*obs.shape[:-1], 1), -1.0))
    assert (careful.act(start) == -1.0).all() and careful.overrides == []


def test_the_shields_planner_starts_from_the_policys_plan_when_it_takes_over(model):
    reckless = shield(model, lambda obs: torch.full((*obs.shape[:-1], 1), 2.0))
    restarts, restart = [], reckless.planner.restart

    def spy(rows, plans):
        restarts.append((rows.tolist(), plans.clone()))
        restart(rows, plans)

    reckless.planner.restart = spy
    unsafe = np.array([[1.0, 0.0, 5.5]], np.float32)
    safe = np.array([[1.0, 0.0, 0.0]], np.float32)
    reckless.act(unsafe)  # the planner takes over: its search starts from the policy's plan
    reckless.act(unsafe)  # and continues from its own plan while it keeps acting
    reckless.act(safe)  # the policy acts again, so the planner's last plan goes stale
    reckless.act(unsafe)
    assert [rows for rows, _ in restarts] == [[0], [0]]
    assert all(plans.shape == (1, 1, 1) and (plans == 2.0).all() for _, plans in restarts)
    assert len(reckless.overrides) == 3


def test_a_shield_restored_from_its_state_acts_as_the_original(model):
    reckless = lambda obs: torch.full((*obs.shape[:-1], 1), 2.0)  # noqa: E731
    unsafe = np.array([[1.0, 0.0, 5.5]], np.float32)

    def acting() -> "Shield":  # noqa: F821
        from forethought.agents.shield import Shield

        safety = SafetyConfig(constraint="pendulum-speed")
        return Shield(reckless, model, agent(model, safety, horizon=3), safety, lookahead=3)

    original = acting()
    original.act(unsafe)
    original.act(unsafe)
    state = copy.deepcopy(original.state_dict())
    restored, fresh = acting(), acting()
    restored.load_state_dict(state)
    fresh._planned = set(state["planned"])  # same bookkeeping, but its own warm start and stream
    want = original.act(unsafe)
    assert np.array_equal(restored.act(unsafe), want)
    assert not np.array_equal(fresh.act(unsafe), want)
    assert restored.overrides == original.overrides and restored.decisions == 3


def test_no_veto_only_measures(model):
    start = np.array([[1.0, 0.0, 5.5]], np.float32)
    measuring = agent(model, SafetyConfig(constraint="pendulum-speed", veto=False))
    assert measuring.act(start)[0, 0] == agent(model, None).act(start)[0, 0]
    assert measuring.vetoed_steps == 0


class _Costly(gym.Env):
    """Three-step episodes of reward 0 whose steps cost `cost` each."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.cost, self.t = 1.0, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 0.0, False, self.t == 3, {"cost": self.cost}


def test_the_lagrangian_penalty_follows_dual_ascent_and_stays_non_negative():
    from forethought.tasks.constraints import LagrangianPenalty

    inner = _Costly()
    env = LagrangianPenalty(inner, cost_limit=1.0, lr=0.5)
    seen = []
    for episode_cost in (1.0, 1.0, 0.0, 0.0, 0.0):
        inner.cost = episode_cost
        env.reset()
        seen.append([env.step(np.zeros(1))[1] for _ in range(3)])
    # lambda: 0 -> 0 + 0.5 (3 - 1) = 1 -> 2 -> 2 - 0.5 = 1.5 -> 1 -> 0.5
    assert seen[0] == [0.0, 0.0, 0.0] and seen[1] == [-1.0, -1.0, -1.0] and seen[2] == [0.0] * 3
    assert env.multiplier == pytest.approx(0.5)
    for _ in range(3):
        env.reset()
        for _ in range(3):
            info = env.step(np.zeros(1))[-1]
    assert env.multiplier == 0.0 and info["lagrange_multiplier"] == 0.0  # never below zero


def test_sac_under_a_constraint_counts_training_and_evaluation_costs(tmp_path):
    """SAC on the constrained task: every evaluation row has the violations since the last one,
    their running total, the evaluation episodes' costs and (Lagrangian) the multiplier; the
    Monitor's training return is the task's own, not the penalised one."""
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--max-episode-steps", "30",
            "--steps", "120", "--eval-every-steps", "30", "--eval-episodes", "2", "--quiet",
            "--safety.constraint", "pendulum-zone", "--safety.lagrangian", "--safety.lagrange-lr",
            "0.5", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "event" not in r]
    assert len(rows) == 4
    assert [r["cost_total"] for r in rows] == list(np.cumsum([r["cost"] for r in rows]))
    assert all(
        len(r["eval_costs"]) == 2 and r["eval_cost"] == np.mean(r["eval_costs"]) for r in rows
    )
    multipliers = [r["lagrange_multiplier"] for r in rows]
    assert all(m >= 0 for m in multipliers)
    # one 30-step episode per row: lambda moves by lr x (episode cost - 0)
    assert multipliers[0] == pytest.approx(0.5 * rows[0]["cost"])
    assert rows[0]["return"] >= -16.3 * 30  # Pendulum's own reward bound: no penalty inside


def test_mbpo_under_a_training_shield_stores_the_actions_it_executed(tmp_path):
    from forethought.trainers import sb3
    from forethought.trainers.run_dir import RunDir
    from test_resume_sb3 import ARGS, COMMON

    out = tmp_path / "run"
    args = [*COMMON, *ARGS["mbpo-shield"], "--steps", "160", "--threads", "1"]
    assert main(["train", "--out", str(out), *args]) == 0
    overrides = [json.loads(x) for x in (out / "shield.jsonl").read_text().splitlines()]
    assert overrides and all(o["env_steps"] > 20 for o in overrides)  # from the first refit on
    directory, config = RunDir.open(out, lock=False)
    sac = sb3._build(config, directory, directory.load_checkpoint()).model
    stored = sac.replay_buffer.actions[:, 0]  # step t's action is row t - 1 (one environment)
    for o in overrides:
        executed = sac.policy.scale_action(np.array(o["planner_action"], np.float32))
        np.testing.assert_allclose(stored[o["env_steps"] - 1], executed, rtol=1e-6)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["shield_overrides"] for r in rows) == len(overrides)
    assert len(rows) == 4 and all(r["eval_shielded"] for r in rows)  # the shield was on by 40
