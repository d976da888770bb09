"""Bad input gives a ForethoughtError whose message says what to change."""

from __future__ import annotations

import math

import pytest
import torch

from forethought.errors import ConfigError, DataError
from forethought.lm import Account, Budget, BudgetExceeded, FunctionReward, best_of_n, prune


def test_prompt_longer_than_context_window(tiny):
    gen, rm = tiny  # context window 64
    with pytest.raises(ConfigError, match=r"context window of 64.*shorten the prompt"):
        best_of_n(gen, rm, "1," * 40 + ">5:", Budget(1000), max_new_tokens=8)


def test_prompt_plus_max_new_tokens_over_window(tiny):
    gen, rm = tiny
    with pytest.raises(ConfigError, match="lower max_new_tokens"):
        best_of_n(gen, rm, "1,2>3:", Budget(1000), max_new_tokens=60)


def test_reward_model_nan_is_a_clear_error(tiny):
    gen, rm = tiny
    layer = rm.model.score  # poison the reward head so every score is NaN
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.fill_(math.nan)
        with pytest.raises(DataError, match=r"non-finite score.*reward model"):
            best_of_n(gen, rm, "1,2>3:", Budget(100), max_new_tokens=8)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)


def test_callable_returning_nan_is_caught(tiny):
    gen, _ = tiny
    nan_reward = FunctionReward(lambda p, r: math.nan, name="my verifier")
    with pytest.raises(DataError, match="my verifier returned a non-finite"):
        prune(gen, nan_reward, "1,2>3:", Budget(200), max_new_tokens=8, chunk=4)


def test_account_refuses_to_overspend():
    account = Account(Budget(max_tokens=10, max_reward_calls=2))
    account.reserve_tokens(10)
    with pytest.raises(BudgetExceeded, match="raise the token budget"):
        account.reserve_tokens(11)
    account.charge_calls("reward", 2)
    with pytest.raises(BudgetExceeded, match="max_reward_calls"):
        account.charge_calls("reward", 1)
    assert account.spent.reward_calls == 2


@pytest.mark.parametrize(
    "field,kwargs",
    [
        ("--budget", {"max_tokens": 0}),
        ("--reward-calls", {"max_tokens": 5, "max_reward_calls": -1}),
    ],
)
def test_budget_validates_fields(field, kwargs):
    with pytest.raises(ConfigError, match=field):
        Budget(**kwargs)


def test_missing_model_path_names_it(tmp_path):
    from forethought.lm import Generator

    with pytest.raises(ConfigError, match="cannot load"):
        Generator.from_pretrained(str(tmp_path / "nope"))
