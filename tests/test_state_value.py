"""The learned state value's targets: TD(lambda) through logged episodes, exact on small data."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from forethought.errors import ConfigError
from forethought.models.value import (
    StateValue,
    ValueConfig,
    ValueTrainer,
    _linked,
    episode_discount,
    logged_level,
    predictive_r2,
)
from forethought.types import TransitionBatch


def episodes():
    """Two logged episodes on a line: the first terminates after 3 steps, the second is cut by
    a time limit after 2. Rewards 1, 2, 3 and 10, 20."""
    obs = np.array([[0.0], [1.0], [2.0], [5.0], [6.0]], np.float32)
    next_obs = np.array([[1.0], [2.0], [3.0], [6.0], [7.0]], np.float32)
    return TransitionBatch(
        obs=obs, action=np.zeros((5, 1), np.float32),
        reward=np.array([1, 2, 3, 10, 20], np.float32), next_obs=next_obs,
        terminated=np.array([0, 0, 1, 0, 0], bool), truncated=np.array([0, 0, 0, 0, 1], bool),
    )  # fmt: skip


def targets(td_lambda, next_values):
    trainer = ValueTrainer(StateValue(1, ValueConfig()), ValueConfig(td_lambda=td_lambda), 0.5)
    data = episodes()
    values = np.asarray(next_values, np.float32)[None]  # one member
    return trainer._lambda_returns(data, _linked(data), values)[0]


def test_lambda_one_is_the_logged_return_bootstrapped_only_where_cut():
    v = [100.0, 100.0, 100.0, 100.0, 8.0]  # V of each next state
    got = targets(1.0, v)
    want = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 10 + 0.5 * (20 + 0.5 * 8), 20 + 0.5 * 8]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_lambda_zero_is_one_step_td():
    v = [4.0, 6.0, 100.0, 2.0, 8.0]
    got = targets(0.0, v)
    np.testing.assert_allclose(got, [1 + 0.5 * 4, 2 + 0.5 * 6, 3, 10 + 0.5 * 2, 20 + 0.5 * 8])


def chain():
    """A chain that ends at position 10, walking right one step at a time, reward 1 per step."""
    xs = np.arange(10, dtype=np.float32)
    data = TransitionBatch(
        obs=xs[:, None], action=np.zeros((10, 1), np.float32), reward=np.ones(10, np.float32),
        next_obs=(xs + 1)[:, None], terminated=xs == 9, truncated=np.zeros(10, bool),
    )  # fmt: skip
    return xs, data


def test_the_value_ranks_states_by_time_left():
    """On the chain, V(x) = sum of discount^t over the 10 - x steps left."""
    xs, data = chain()
    torch.manual_seed(0)
    config = ValueConfig(rounds=150, learning_rate=3e-3)
    value = StateValue(1, config)
    ValueTrainer(value, config, 0.9).fit(data, np.random.default_rng(0))
    want = torch.tensor([(1 - 0.9 ** (10 - x)) / (1 - 0.9) for x in xs])
    with torch.no_grad():
        got = value(torch.as_tensor(xs)[:, None])
    torch.testing.assert_close(got, want, atol=0.35, rtol=0.05)


def test_value_members_each_learn_the_chain_and_disagree_off_the_data():
    """Three networks fitted side by side on the chain: each one (not only their mean) learns
    V(x), each bootstrapping from itself, and far from the data they extrapolate apart."""
    xs, data = chain()
    torch.manual_seed(0)
    config = ValueConfig(rounds=150, learning_rate=3e-3, members=3)
    value = StateValue(1, config)
    ValueTrainer(value, config, 0.9).fit(data, np.random.default_rng(0))
    want = torch.tensor([(1 - 0.9 ** (10 - x)) / (1 - 0.9) for x in xs])
    with torch.no_grad():
        each = value.by_member(torch.as_tensor(xs)[:, None])
        far = value.by_member(torch.tensor([[-40.0], [60.0]]))
        mean = value(torch.as_tensor(xs)[:, None])
    assert each.shape == (3, 10)
    for member in each:
        torch.testing.assert_close(member, want, atol=0.5, rtol=0.05)
    torch.testing.assert_close(mean, each.mean(0).clamp(0, 10))
    assert (far.std(0) > 5 * each.std(0).max()).all()


def test_one_member_is_the_plain_network():
    """members=1 keeps the single network's parameters and draws (old checkpoints load)."""
    torch.manual_seed(0)
    one = StateValue(3, ValueConfig(members=1))
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64), torch.nn.SiLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    for (name, a), b in zip(one.net.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(Exception, match="members"):
        ValueConfig(members=0).validate()


def penalty_per_step(rng: np.random.Generator) -> TransitionBatch:
    """200 random 2-d states, reward -1 on every step, episodes cut by a time limit every 20."""
    obs = rng.normal(size=(200, 2)).astype(np.float32)
    return TransitionBatch(
        obs=obs, action=np.zeros((200, 1), np.float32), reward=-np.ones(200, np.float32),
        next_obs=obs + 0.1, terminated=np.zeros(200, bool), truncated=np.arange(200) % 20 == 19,
    )  # fmt: skip


def test_values_stay_within_the_returns_the_rewards_allow():
    """Reward -1 on every step, episodes cut by a time limit: no return is below
    -1 / (1 - 0.9) = -10 or above 0, however far a state is from the data."""
    rng = np.random.default_rng(0)
    data = penalty_per_step(rng)
    torch.manual_seed(0)
    value = StateValue(2, ValueConfig(rounds=20))
    ValueTrainer(value, ValueConfig(rounds=20), 0.9).fit(data, rng)
    far = 50.0 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not ((value.unbounded(far) >= -10) & (value.unbounded(far) <= 0)).all()
        values = value(far)
    assert (values >= -10.0 - 1e-5).all() and (values <= 0.0).all()
    # A checkpoint from before the bounds loads, unbounded.
    old = {k: v for k, v in value.state_dict().items() if not k.startswith("return_")}
    fresh = StateValue(2, ValueConfig())
    fresh.load_state_dict(old)
    assert fresh.return_low == -torch.inf and fresh.return_high == torch.inf


def test_beyond_its_bounds_the_value_reads_the_logged_level_when_asked():
    """Far from the data V leaves [-10, 0]; `clamp` reads the nearer bound there, `level` the
    logged level (-10 here: reward -1 and only time-limit cuts) wherever V is further out than
    its fit's error; elsewhere both read the same."""
    rng = np.random.default_rng(0)
    data = penalty_per_step(rng)
    torch.manual_seed(0)
    config = ValueConfig(rounds=20, unsupported="level")
    value = StateValue(2, config)
    ValueTrainer(value, config, 0.9).fit(data, rng)
    assert float(value.level) == pytest.approx(-10.0)
    far = 50.0 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw, tolerance = value.unbounded(far), float(value.fit_error)
        outside = (raw < -10 - tolerance) | (raw > tolerance)
        assert 0 < tolerance < 1 and outside.any() and not outside.all()
        level = value(far)
        value.unsupported = "clamp"
        clamped = value(far)
    torch.testing.assert_close(level[outside], torch.full_like(level[outside], -10.0))
    torch.testing.assert_close(level[~outside], clamped[~outside])
    assert (clamped[raw > 0] == 0).all()


def test_where_the_members_disagree_more_than_on_the_data_the_value_reads_the_level():
    """Three networks on the chain: on the logged states they agree and the mean is read; far
    off, where they disagree more than on any logged state, the logged level is."""
    xs, data = chain()
    torch.manual_seed(0)
    config = ValueConfig(rounds=150, learning_rate=3e-3, members=3, unsupported="level")
    value = StateValue(1, config)
    ValueTrainer(value, config, 0.9).fit(data, np.random.default_rng(0))
    on_data, far = torch.as_tensor(xs)[:, None], torch.tensor([[-40.0], [60.0]])
    with torch.no_grad():
        limit = float(value.spread_limit)
        assert limit == pytest.approx(float(value.by_member(on_data).std(0).max()))
        assert (value.by_member(far).std(0) > limit).all()
        torch.testing.assert_close(value(on_data), value.by_member(on_data).mean(0))
        torch.testing.assert_close(value(far), value.level.expand(2))


def test_unsupported_must_be_clamp_or_level():
    with pytest.raises(ConfigError, match=r"value\.unsupported"):
        ValueConfig(unsupported="zero").validate()


def test_the_first_fit_starts_at_the_logged_level():
    """The mean discounted return of the logged states, a cut episode continuing at that mean:
    with reward -1 and only time-limit cuts it is -1 / (1 - discount) whatever the cut points."""
    steps = 60
    data = TransitionBatch(
        obs=np.zeros((steps, 1), np.float32), action=np.zeros((steps, 1), np.float32),
        reward=-np.ones(steps, np.float32), next_obs=np.zeros((steps, 1), np.float32),
        terminated=np.zeros(steps, bool), truncated=np.arange(steps) % 25 == 24,
    )  # fmt: skip
    linked = np.ones(steps, bool)
    linked[[24, 49, steps - 1]] = False
    assert abs(logged_level(data, linked, 0.9) - (-10.0)) < 1e-9
    # Terminating episodes: the mean of their discounted returns, 1 + 0.5 * 2 + 0.25 * 3 etc.
    logged = episodes()
    first = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3]
    # The cut episode (10, 20) continues at L: G = 10 + 0.5 * 20 + 0.25 L and 20 + 0.5 L.
    level = (sum(first) + 10 + 0.5 * 20 + 20) / (5 - 0.25 - 0.5)
    assert abs(logged_level(logged, _linked(logged), 0.5) - level) < 1e-9
    value = StateValue(1, ValueConfig(rounds=1, learning_rate=1e-9))
    ValueTrainer(value, ValueConfig(rounds=1, learning_rate=1e-9), 0.5).fit(
        logged, np.random.default_rng(0)
    )
    assert abs(float(value.output_bias().detach()) - level) < 1e-3


def test_fresh_fits_forget_the_previous_fit():
    """With fresh_fits, a value fitted on A and then on B equals one fitted on B alone (same
    rng state at B's fit); without it, the fit on A carries over."""

    def fit_b(fresh: bool, after_a: bool) -> torch.Tensor:
        config = ValueConfig(rounds=5, fresh_fits=fresh)
        torch.manual_seed(0)
        trainer = ValueTrainer(StateValue(1, config), config, 0.5)
        if after_a:
            shifted = episodes()
            shifted.reward[:] = 100.0
            trainer.fit(shifted, np.random.default_rng(7))
        trainer.fit(episodes(), np.random.default_rng(1))
        with torch.no_grad():
            return trainer.value(torch.linspace(-2, 8, 11).unsqueeze(1))

    torch.testing.assert_close(fit_b(True, after_a=True), fit_b(True, after_a=False))
    assert not torch.allclose(fit_b(False, after_a=True), fit_b(False, after_a=False), atol=0.1)


def test_the_episode_discount_looks_as_far_as_recent_episodes_last():
    """Horizon 1 / (1 - discount) = scale x the mean length of the last 5 episodes, at least
    the base discount's."""
    lengths = [3, 10, 20, 30, 40, 50, 60]  # the last 5 average 40
    done = np.zeros(sum(lengths), bool)
    done[np.cumsum(lengths) - 1] = True
    n = len(done)
    data = TransitionBatch(
        np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32), np.ones(n, np.float32),
        np.zeros((n, 1), np.float32), done, np.zeros(n, bool),
    )  # fmt: skip
    assert episode_discount(data, 0.9, 2.0) == pytest.approx(1 - 1 / 80)
    assert episode_discount(data, 0.999, 2.0) == 0.999  # never below the base
    assert episode_discount(data[:2], 0.9, 2.0) == 0.9  # no complete episode yet


def test_more_passes_per_round_fit_the_chain_that_one_pass_leaves_underfitted():
    """30 rounds of one pass each are 30 updates on the 10-transition chain: V stays near its
    starting level. Ten passes per round against the same targets learn V(x)."""
    xs, data = chain()
    want = torch.tensor([(1 - 0.9 ** (10 - x)) / (1 - 0.9) for x in xs])
    errors = {}
    for passes in (1, 10):
        torch.manual_seed(0)
        config = ValueConfig(passes=passes)  # the defaults: 30 rounds, learning rate 1e-3
        value = StateValue(1, config)
        ValueTrainer(value, config, 0.9).fit(data, np.random.default_rng(0))
        with torch.no_grad():
            errors[passes] = float((value(torch.as_tensor(xs)[:, None]) - want).abs().max())
    assert errors[10] < 0.1 < 1.0 < errors[1], errors


def test_passes_must_be_positive():
    with pytest.raises(ConfigError, match=r"value\.passes"):
        ValueConfig(passes=0).validate()


def joined(*batches: TransitionBatch) -> TransitionBatch:
    """The buffer after appending each batch in turn."""
    fields = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
    return TransitionBatch(**{f: np.concatenate([getattr(b, f) for b in batches]) for f in fields})


def test_the_value_is_trusted_only_once_it_predicts_transitions_it_was_not_fitted_on():
    _, data = chain()
    torch.manual_seed(0)
    config = ValueConfig(rounds=150, learning_rate=3e-3, trust=0.9)
    value, rng = StateValue(1, config), np.random.default_rng(0)
    trainer = ValueTrainer(value, config, 0.9)
    trainer.fit(data, rng)
    assert not value.trusted and torch.isnan(value.checked_r2)  # nothing unseen to check yet
    trainer.fit(joined(data, data), rng)  # the chain again, as V predicts it
    assert value.trusted and value.checked_r2 > 0.9
    unrewarded = replace(data, reward=np.zeros(10, np.float32))
    trainer.fit(joined(data, data, unrewarded), rng)  # returns of 0 where V says 1 to 6.5
    assert not value.trusted and value.checked_r2 < 0.5
    assert int(value.fitted_on) == 30


def constant_value(c: float) -> StateValue:
    value = StateValue(1, ValueConfig())
    with torch.no_grad():
        value.net[-1].weight.zero_()
        value.output_bias().fill_(c)
    return value


def test_the_check_scores_only_returns_that_are_mostly_real_reward():
    """R-squared against the logged level as the baseline: V at that level scores 0. A cut
    episode continues at V where it was cut, and states within ln 2 / (1 - discount) steps of
    the cut (mostly V's own guess) are left out."""
    xs, data = chain()  # terminates: every state's return is real reward
    value = constant_value(2.0)
    value.level.fill_(2.0)
    assert predictive_r2(value, data, 0.9) == pytest.approx(0.0)
    cut = replace(data, terminated=np.zeros(10, bool), truncated=xs == 9)
    value.level.fill_(0.0)
    left = 10 - xs[:4]  # 0.9^k <= 0.5 for the k >= 7 steps left before the cut
    returns = (1 - 0.9**left) / 0.1 + 0.9**left * 2.0
    want = 1 - ((2.0 - returns) ** 2).sum() / (returns**2).sum()
    assert predictive_r2(value, cut, 0.9) == pytest.approx(want, rel=1e-5)
    assert predictive_r2(value, cut[4:], 0.9) is None  # too close to the cut to judge


def test_trust_must_be_at_most_one():
    with pytest.raises(ConfigError, match=r"value\.trust: must be at most 1"):
        ValueConfig(trust=1.5).validate()
