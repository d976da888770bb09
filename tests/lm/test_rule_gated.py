"""RuleGated: a rule check in front of a scorer, and how search settings pick partial scorers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from forethought.errors import ConfigError, DataError
from forethought.lm import Account, Budget, Candidate, FunctionReward
from forethought.lm.compare import partial_scorer
from forethought.lm.rewards import RuleGated
from forethought.lm.tasks import countdown


def _cands(texts):
    return [Candidate("p", (1,), text=t) for t in texts]


def test_rule_breakers_rank_below_every_rule_keeper():
    inner = FunctionReward(lambda p, r: float(len(r)), kind="value", name="length")
    gated = RuleGated(lambda p, r: float("x" not in r), inner)
    scores = gated(_cands(["xxxxxxxx", "a", "abc", "x"]))
    assert list(np.argsort(-scores)) == [2, 1, 0, 3]  # keepers by length, then breakers


def test_one_gated_call_is_one_call_of_the_inner_kind():
    for kind in ("value", "reward"):
        inner = FunctionReward(lambda p, r: 0.5, kind=kind)
        account = Account(Budget(100, max_reward_calls=10, max_value_calls=10))
        RuleGated(lambda p, r: 1.0, inner)(_cands(["a", "b", "c"]), account)
        assert account.spent.as_dict()[f"{kind}_calls"] == 3
        assert account.spent.tokens == 0


def test_nan_from_the_inner_scorer_is_still_an_error():
    inner = FunctionReward(lambda p, r: float("nan"), kind="value")
    with pytest.raises(DataError, match="non-finite"):
        RuleGated(lambda p, r: 1.0, inner)(_cands(["a"]))


def test_partial_scorer_names():
    value = FunctionReward(lambda p, r: 0.0, kind="value")
    proxy = FunctionReward(lambda p, r: 0.0, kind="reward")
    suite = SimpleNamespace(value=value, proxy=proxy, prm=None, task=countdown.DEFAULT)
    assert partial_scorer(suite, "value", "process") is value
    assert partial_scorer(suite, "proxy", "process") is proxy
    gated = partial_scorer(suite, "legal+value", "process")
    assert isinstance(gated, RuleGated) and gated.inner is value and gated.kind == "value"
    assert partial_scorer(suite, "legal+proxy", "process").kind == "reward"
    with pytest.raises(ConfigError, match="--prune-scorer"):
        partial_scorer(suite, "gold", "prune_scorer")
    with pytest.raises(ConfigError, match="--process: needs a process reward model"):
        partial_scorer(suite, "prm", "process")
