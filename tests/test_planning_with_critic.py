"""--algo loop: MPC with a learned critic at the horizon and an actor proposing plans, while SAC
learns from the planner's transitions. Known optimum with the true value, pessimism over
members, kill-and-resume equals the uninterrupted run, and the errors a user can cause."""

import json
import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents.guided import GuidedMPCAgent, PolicyPrior
from forethought.cli import main
from forethought.config import LoopConfig
from forethought.planners import PlannerConfig, make_planner
from forethought.rollout import RolloutConfig
from forethought.tasks.base import TaskSpec
from forethought.trainers.actor_critic import ActorCritic
from forethought.trainers.run_dir import RunDir
from helpers import TINY_ARGS, kill_when, start_cli
from test_rollout import OffsetEnsemble

GAMMA = 0.9


def riccati() -> float:
    """P of the discounted scalar LQR x' = x + a, reward -(x^2 + a^2): V*(x) = -P x^2."""
    p = 1.0
    for _ in range(1000):
        p = 1.0 + GAMMA * p / (1.0 + GAMMA * p)
    return p


class TrueValue:
    """A critic that knows the optimal value of the LQR task."""

    gamma = GAMMA

    def __init__(self):
        self.p = riccati()

    def value(self, obs):
        return -self.p * obs[..., 0] ** 2


def lqr_task_and_planner():
    """The LQR reward -(x^2 + a^2) and a horizon-1 CEM over a in [-2, 2]."""
    cost = lambda obs, action, next_obs: -(obs[..., 0] ** 2 + action[..., 0] ** 2)  # noqa: E731
    planner = make_planner(
        "cem",
        PlannerConfig(horizon=1, population=200, elites=20, iterations=6),
        np.array([-2.0]),
        np.array([2.0]),
    )
    return TaskSpec("lqr", cost, None), planner


def lqr_agent(bootstrap: bool, model=None, pessimistic: bool = False) -> GuidedMPCAgent:
    task, planner = lqr_task_and_planner()
    return GuidedMPCAgent(
        model or OffsetEnsemble(1),  # one member, offset 0: exactly x' = x + a
        planner,
        task,
        RolloutConfig(particles=2, sample=False, discount=GAMMA),
        seed=0,
        track_disagreement=False,
        prior=TrueValue(),
        proposals=0,
        bootstrap=bootstrap,
        pessimistic=pessimistic,
    )


def test_a_horizon_one_planner_with_the_true_value_picks_the_optimal_action():
    p = riccati()
    x = np.array([[1.0], [-0.5]], np.float32)
    optimal = -GAMMA * p / (1.0 + GAMMA * p) * x[:, 0]  # argmax of -(x^2+a^2) + gamma V*(x+a)
    action = lqr_agent(bootstrap=True).act(x)[:, 0]
    np.testing.assert_allclose(action, optimal, atol=0.02)
    # Without the value the one-step reward alone says "do nothing": the value is what plans.
    myopic = lqr_agent(bootstrap=False).act(x)[:, 0]
    np.testing.assert_allclose(myopic, 0.0, atol=0.02)
    assert np.all(np.abs(optimal) > 0.25)


def test_pessimistic_value_takes_the_worst_member():
    agent = lqr_agent(bootstrap=True, model=OffsetEnsemble(2), pessimistic=True)

    class Imagined:  # one problem, one candidate, four particles: members 0, 1, 0, 1
        final_state = torch.tensor([1.0, 3.0, 1.0, 1.0]).view(1, 1, 4, 1)
        final_alive = torch.ones(1, 1, 4, dtype=torch.bool)

    p = riccati()
    member_means = torch.tensor([-p * 1.0, -p * (9.0 + 1.0) / 2])
    pessimistic = agent.terminal_value(Imagined)
    torch.testing.assert_close(pessimistic[0, 0], GAMMA * member_means.min())
    agent.pessimistic_value = False
    torch.testing.assert_close(agent.terminal_value(Imagined)[0, 0], GAMMA * member_means.mean())


LOOP_ARGS = [
    *TINY_ARGS,
    "--algo", "loop",
    "--loop.hidden-size", "16",
    "--loop.batch-size", "16",
    "--loop.train-freq", "10",
    "--loop.learning-starts", "10",
    "--loop.proposals", "2",
]  # fmt: skip
EPISODES, STEPS = 3, 30


def rows_of(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    timing = {"fit_seconds", "ms_per_action", "cpu_seconds", "eval_cpu_seconds"}
    return [
        {k: v for k, v in json.loads(x).items() if k not in timing}
        for x in lines
        if x and '"event"' not in x
    ]


def test_loop_run_learns_the_critic_and_records_it(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *LOOP_ARGS, "--episodes", "2"]) == 0
    rows = rows_of(out)
    assert [r["policy"] for r in rows] == ["random", "loop-icem"]
    assert rows[-1]["critic_updates"] == 60  # at steps 10, 20, ..., 60: 10 updates each
    assert np.isfinite(rows[-1]["critic_loss"]) and np.isfinite(rows[-1]["eval_return"])
    assert json.loads((out / "config.json").read_text())["loop"]["train_freq"] == 10


def test_a_loop_run_records_whether_it_trusted_its_value(tmp_path):
    out = tmp_path / "run"
    args = [*LOOP_ARGS, "--value.trust", "0.5", "--value.rounds", "3", "--episodes", "3"]
    args += ["--loop.gamma", "0.9"]  # 30-step episodes: returns mostly real 7 steps from the cut
    assert main(["train", "--out", str(out), *args]) == 0
    rows = rows_of(out)
    assert [r["value_trusted"] for r in rows[:1]] == [False]  # fitted once, never checked
    assert rows[0]["value_r2"] is None
    assert all(np.isfinite(r["value_r2"]) for r in rows[1:])
    assert [r["value_trusted"] for r in rows[1:]] == [r["value_r2"] >= 0.5 for r in rows[1:]]


def test_a_loop_run_tries_its_value_in_the_model_and_records_the_verdict(tmp_path):
    """--value.trial-steps: after every fit the planner runs in the model with and without V;
    plans use V only while it does not lower that return. The same seed gives the same run."""
    args = [*LOOP_ARGS, "--value.trial-steps", "4", "--value.trial-starts", "2"]
    args += ["--value.rounds", "3", "--episodes", "3"]
    for name in ("a", "b"):
        assert main(["train", "--out", str(tmp_path / name), *args]) == 0
    rows = rows_of(tmp_path / "a")
    assert rows == rows_of(tmp_path / "b")
    assert all(np.isfinite(r["value_trial_gain"]) for r in rows)  # a fit ends every episode
    assert [r["value_trusted"] for r in rows] == [r["value_trial_gain"] >= 0 for r in rows]
    assert all(r["value_r2"] is None for r in rows)  # no --value.trust: no R-squared check


def test_a_loop_whose_value_is_never_trusted_acts_as_plain_mpc_does(tmp_path):
    """With no proposals and a gate V never passes (R-squared 1), every draw of the model,
    the planner and the evaluations is plain MPC's: SAC and V learn beside it on their own
    streams, and plans are scored with MPC's undiscounted sum. Passing the gate changes that."""
    loop = [*LOOP_ARGS, "--loop.proposals", "0", "--value.rounds", "3", "--episodes", "3"]
    loop += ["--loop.gamma", "0.9"]  # 30-step episodes: returns mostly real 7 steps from the cut
    runs = {
        "mpc": [*TINY_ARGS, "--episodes", "3"],
        "never": [*loop, "--value.trust", "1.0"],
        "trusted": [*loop, "--value.trust", "-10"],  # passes every check
    }
    for name, args in runs.items():
        assert main(["train", "--out", str(tmp_path / name), *args]) == 0
    keys = ("return", "eval_return", "env_steps")
    returns = {n: [[r[k] for k in keys] for r in rows_of(tmp_path / n)] for n in runs}
    assert returns["never"] == returns["mpc"]
    # Episode 2 is played before V's first check, evaluated after it (trusted from then on).
    assert returns["trusted"][0] == returns["mpc"][0]
    assert returns["trusted"][1][0] == returns["mpc"][1][0]
    assert returns["trusted"][1][1] != returns["mpc"][1][1]
    assert [r["value_trusted"] for r in rows_of(tmp_path / "trusted")] == [False, True, True]


def test_the_loops_value_also_fits_rollouts_of_the_actor_when_asked(tmp_path):
    """--value.imagined-horizon with --algo loop: SAC's actor plays in the model from logged
    states and V fits those returns too; the same seed gives the same run."""
    args = [*LOOP_ARGS, "--value.imagined-horizon", "5", "--value.rounds", "3", "--episodes", "2"]
    for name in ("a", "b"):
        assert main(["train", "--out", str(tmp_path / name), *args]) == 0
    plain = tmp_path / "plain"
    assert (
        main(["train", "--out", str(plain), *LOOP_ARGS, "--value.rounds", "3", "--episodes", "2"])
        == 0
    )
    assert rows_of(tmp_path / "a") == rows_of(tmp_path / "b")
    values = [
        RunDir(tmp_path / n).load_checkpoint()["value"]["net.0.weight"] for n in ("a", "plain")
    ]
    assert not torch.equal(*values)


def test_the_actor_samples_reproducibly_from_a_generator():
    env = gym.make("Pendulum-v1")
    sac = ActorCritic(LoopConfig(hidden_size=16), env.observation_space, env.action_space,
                      1_000, seed=0, device="cpu").sac  # fmt: skip
    prior = PolicyPrior(sac)
    obs = torch.zeros(64, 3)
    draw = [prior.sample(obs, torch.Generator().manual_seed(0)) for _ in range(2)]
    torch.testing.assert_close(draw[0], draw[1])
    assert draw[0].shape == (64, 1) and draw[0].std() > 0.01
    assert draw[0].abs().max() <= 2.0  # Pendulum's torque bounds


IMAGINED_ARGS = [
    "--loop.imagined-ratio",
    "0.5",
    "--loop.branches",
    "20",
    "--loop.branch-length",
    "2",
]


def test_loop_with_imagined_data_branches_after_every_fit(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *LOOP_ARGS, *IMAGINED_ARGS, "--episodes", "2"]) == 0
    rows = rows_of(out)
    assert rows[0]["imagined_transitions"] == 40  # fitted after the warm-up: 20 branches x 2
    assert rows[1]["imagined_transitions"] == 80
    checkpoint = RunDir(out).load_checkpoint()
    state, real = checkpoint["actor_critic"]["imagined"], checkpoint["buffer"]["obs"]
    assert state["pos"] == 80
    # Each fit's first 20 rows start from real states (of the data fitted), the next 20 from
    # the states imagined from them.
    firsts = np.concatenate([state["observations"][:20, 0], state["observations"][40:60, 0]])
    assert all(np.isclose(real, row, atol=1e-6).all(axis=1).any() for row in firsts)
    seconds = state["observations"][20:40, 0]
    assert not any(np.isclose(real, row, atol=1e-6).all(axis=1).any() for row in seconds)


EXTRA_ARGS = {
    "real": [],
    "imagined": IMAGINED_ARGS,
    # A gated value draws its fresh weights and shuffles from its own stream.
    "gated": ["--value.trust", "0", "--value.fresh-fits", "--loop.gamma", "0.9"],
    # Training plans start at an actor sample drawn from the planner's stream.
    "sampled-anchor": ["--loop.anchor", "--loop.anchor-sampled", "--loop.proposals", "2"],
}


@pytest.mark.slow  # ~40 s each; MPC's and SAC's kill tests cover the two halves in the default tier
@pytest.mark.parametrize("extra", ["real", "imagined", "gated", "sampled-anchor"])
def test_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, extra):
    reference = tmp_path / "reference"
    imagined = extra == "imagined"
    args = [*LOOP_ARGS, *EXTRA_ARGS[extra], "--episodes", str(EPISODES)]
    assert start_cli(["--out", str(reference), *args]).wait(timeout=300) == 0

    out = tmp_path / "run"
    rng = random.Random(3)
    t1, t2 = rng.randrange(3, STEPS - 2), rng.randrange(3, STEPS - 2)
    kills = [
        ("mid-episode 1", lambda: len(_records(out)) >= STEPS + t1),
        ("mid-episode 2", lambda: len(_records(out)) >= 2 * STEPS + t2),
    ]
    proc = start_cli(["--out", str(out), *args])
    for what, condition in kills:
        kill_when(proc, condition, what)
        proc = start_cli(["--resume", str(out)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    assert rows_of(out) == rows_of(reference)  # same returns, evaluations, critic losses
    want = RunDir(reference).load_checkpoint()["actor_critic"]
    got = RunDir(out).load_checkpoint()["actor_critic"]
    assert got["updates"] == want["updates"] and got["parameters"] == want["parameters"]
    if imagined:
        np.testing.assert_array_equal(
            got["imagined"]["observations"], want["imagined"]["observations"]
        )


def _records(out):
    """Transitions in the run's log so far (abandoned attempts included)."""
    path = out / "transitions.bin"
    size = 2 + 3 + 1 + 1 + 3 + 2  # episode, t, obs, action, reward, next_obs, flags (Pendulum)
    return [] if not path.exists() else range(path.stat().st_size // (8 * size))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--planner", "mcts"], "--algo loop uses SAC's actor and critic"),
        (["--loop.gamma", "1.0"], "--loop.gamma: must be in (0, 1)"),
        (["--rollout.discount", "0.9"], "is --loop.gamma for --algo loop"),
        (["--loop.pessimistic-value", "--rollout.propagation", "mean"], "not mean"),
        (["--loop.train-freq", "0"], "--loop.train-freq: must be at least 1"),
        (["--loop.imagined-ratio", "1"], "--loop.imagined-ratio: must be in [0, 1)"),
        (["--env", "CartPole-v1"], "Discrete"),
        (["--loop.value", "critic", "--value.imagined-horizon", "5"], "--algo loop's state value"),
        (["--loop.value", "critic", "--value.trust", "0.5"], "needs --algo loop (--loop.value"),
        (["--loop.anchor-sampled"], "--loop.anchor-sampled: needs --loop.anchor"),
        (["--loop.anchor", "--loop.anchor-sampled", "--loop.proposals", "1"], "2 or more"),
    ],
)
def test_bad_loop_settings_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "run"), *LOOP_ARGS, *args]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert message in text and "Traceback" not in text
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["critic", "behaviour"])
def test_evaluate_fields_every_controller_of_a_loop_run(tmp_path, value):
    out = tmp_path / "run"
    args = [*LOOP_ARGS, "--episodes", "2", "--loop.value", value, "--value.rounds", "2"]
    assert main(["train", "--out", str(out), *args]) == 0
    assert main(["evaluate", str(out), "--episodes", "2", "--mpc-horizon", "3"]) == 0
    report = json.loads((out / "controllers.json").read_text())
    for name in ("policy", "mpc", "guided", "switch"):
        assert np.isfinite(report[name]["eval_return"])
    # The run's own record of its actor alone, at its last evaluation, is what evaluate measures
    # for the final policy on the same seeds.
    actor = rows_of(out)[-1]["eval_actor_return"]
    assert actor == pytest.approx(report["policy"]["eval_return"], rel=1e-4)
    checkpoint = RunDir(out).load_checkpoint()
    assert ("value" in checkpoint) == (value == "behaviour")  # the planner's own value, saved


def test_a_sampled_anchor_applies_to_training_plans_only(tmp_path):
    """--loop.anchor-sampled: the agent that collects training episodes starts its plans at a
    drawn actor trajectory, the evaluation agent at the actor's mean; the run completes."""
    from forethought.trainers.pets import _build

    out = tmp_path / "run"
    args = ["--loop.anchor", "--loop.anchor-sampled", "--loop.proposals", "2"]
    assert main(["train", "--out", str(out), *LOOP_ARGS, *args, "--episodes", "2"]) == 0
    assert np.isfinite(rows_of(out)[-1]["eval_return"])
    directory, config = RunDir.open(out, lock=False)
    run = _build(config, directory)
    assert run.agent.sampled_anchor and run.agent.anchor
    assert not run.eval_agent.sampled_anchor and run.eval_agent.anchor
