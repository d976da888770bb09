"""The value fitted on imagined rollouts of a distilled policy (--value.imagined-horizon)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from forethought.cli import main
from forethought.models.policy import DistilledPolicy
from forethought.models.value import StateValue, ValueConfig, ValueTrainer
from forethought.rollout import categorical, imagine_policy
from forethought.types import TransitionBatch


class LineModel:
    """A known deterministic model on a line: action 0 moves x by -1, action 1 by +1."""

    action_dim, ensemble_size = 2, 1
    config = SimpleNamespace(probabilistic=False)

    def predict(self, obs, action):
        step = action[..., 1:] - action[..., :1]
        return SimpleNamespace(next_obs_mean=obs + step, next_obs_var=torch.zeros_like(obs))


def always_right(states):
    return torch.tensor([-50.0, 50.0]).expand(*states.shape[:-1], 2)


def test_imagined_returns_are_the_discounted_rewards_to_termination_or_the_horizon_value():
    """Walking right from x = 0 with reward 1 per step, ending when |x| reaches 3, discount 0.5:
    to the end the returns-to-go are 1.75, 1.5, 1 at x = 0, 1, 2; cut at 2 steps, a state
    still alive is worth the value there (10): 1 + 0.5 (1 + 0.5 * 10) = 4 at x = 0."""
    start = torch.zeros(1, 1, 1)

    def run(horizon):
        return imagine_policy(
            LineModel(), start, categorical(always_right), horizon, 0.5,
            reward_fn=lambda s, a, n: torch.ones(s.shape[:-1]),
            termination_fn=lambda n: n[..., 0].abs() >= 3,
            value_fn=lambda s: torch.full(s.shape[:-1], 10.0),
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip

    full = run(5)  # terminates at step 3: later steps are not visited
    assert full.states[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert full.returns.tolist() == pytest.approx([1.75, 1.5, 1.0])
    cut = run(2)
    assert cut.states[:, 0].tolist() == [0.0, 1.0]
    assert cut.returns.tolist() == pytest.approx([4.0, 6.0])


def test_the_distilled_policy_learns_the_planners_rule():
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(512, 3, generator=generator)
    actions = (obs[:, 0] > 0).long()  # push towards the side the first coordinate is on
    policy = DistilledPolicy(3, 2)
    assert policy.fit(obs, actions, seed=0) > 0.95
    fresh = torch.randn(256, 3, generator=generator)
    assert (policy(fresh).argmax(-1) == (fresh[:, 0] > 0)).float().mean() > 0.9


def test_imagined_targets_teach_the_value_where_the_logs_never_went():
    """Logged states near 0 all worth 10 (by TD, a constant reward with no ending); imagined
    states near 5 worth 0. The fitted value separates them; without the imagined ones it
    extrapolates the logged level to 5."""
    n = 256
    obs = np.random.default_rng(0).normal(0, 0.1, (n, 1)).astype(np.float32)
    logged = TransitionBatch(
        obs, np.zeros((n, 1), np.float32), np.full(n, 1.0, np.float32), obs,
        np.zeros(n, bool), np.ones(n, bool),
    )  # fmt: skip
    imagined = (torch.full((n, 1), 5.0), torch.zeros(n))
    far = torch.tensor([[5.0]])

    def fitted(extra):
        torch.manual_seed(0)
        value = StateValue(1, ValueConfig(rounds=40))
        ValueTrainer(value, ValueConfig(rounds=40), 0.9).fit(
            logged, np.random.default_rng(0), extra
        )
        with torch.no_grad():
            return float(value(torch.zeros(1, 1))), float(value(far))

    near, far_value = fitted(imagined)
    assert near == pytest.approx(10.0, abs=1.0) and far_value == pytest.approx(0.0, abs=1.0)
    assert fitted(None)[1] > 5.0


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--env", "Pendulum-v1"], "is for tree search (--planner mcts)"),
        (["--env", "CartPole-v1", "--planner", "discrete-cem"], "is for tree search"),
        (["--env", "CartPole-v1", "--planner", "mcts", "--value.no-enabled"], "needs --value"),
    ],
)
def test_imagined_value_where_it_cannot_apply_is_one_line(argv, expected, tmp_path, capsys):
    args = ["train", *argv, "--value.imagined-horizon", "50", "--out", str(tmp_path / "r")]
    assert main([*args, "--quiet"]) == 2
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and expected in out and "value.imagined-horizon" in out
    assert not (tmp_path / "r").exists()
