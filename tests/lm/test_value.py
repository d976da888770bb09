"""Value predictors: fit, rank, save/load; prefixes are exact token prefixes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.errors import ConfigError
from forethought.lm import Account, Budget
from forethought.lm.value import HiddenStateValue, prefix_dataset, rank_correlation_by_length


@pytest.fixture(scope="module")
def samples(tiny):
    gen, _ = tiny
    torch.manual_seed(0)
    cands = []
    for prompt in ("1,2>3:", "4,5>9:", "7,2>14:", "9,3>3:"):
        cands += gen.generate(prompt, 30, 12, Account(Budget(30 * 12)))
    return cands


def test_prefix_is_an_exact_token_prefix(tiny, samples):
    gen, _ = tiny
    c = next(c for c in samples if len(c.token_ids) >= 6)
    p = gen.prefix(c, 5)
    assert p.token_ids == c.token_ids[:5] and not p.finished
    assert gen.prefix(c, 100) is c


def test_hidden_state_probe_learns_a_readable_target(tiny, samples):
    gen, _ = tiny

    # Whether the last character is a digit is visible in the last token's hidden state.
    def target(c):
        return float(c.text[-1:].isdigit())

    prefixes, _ = prefix_dataset(gen, samples, [0.0] * len(samples), lengths=(3, 6, 9))
    y = np.array([target(c) for c in prefixes])
    value = HiddenStateValue(gen).fit(prefixes, y)
    pred = value(prefixes, Account(Budget(1, max_value_calls=len(prefixes))))
    assert np.corrcoef(pred, y)[0, 1] > 0.8
    # Prefix lengths and groups come back in the report.
    finals = [target(c) for c in samples]
    groups = [i // 30 for i in range(len(samples))]
    report = rank_correlation_by_length(value, gen, samples, finals, groups, lengths=(3, 6))
    assert set(report) == {"3", "6", "full"}
    assert report["full"]["pooled"] > 0.5


def test_value_calls_are_counted_and_capped(tiny, samples):
    gen, _ = tiny
    value = HiddenStateValue(gen).fit(samples, [len(c.text) for c in samples])
    account = Account(Budget(1, max_value_calls=5))
    value(samples[:5], account)
    assert account.spent.value_calls == 5
    with pytest.raises(Exception, match="max_value_calls"):
        value(samples[:1], account)


def test_save_load_roundtrip(tiny, samples, tmp_path):
    gen, _ = tiny
    value = HiddenStateValue(gen).fit(samples, [len(c.text) for c in samples])
    value.save(tmp_path / "v.npz")
    again = HiddenStateValue(gen).load(tmp_path / "v.npz")
    assert again(samples) == pytest.approx(value(samples))
    with pytest.raises(ConfigError, match="not fitted"):
        HiddenStateValue(gen)(samples[:1])
    with pytest.raises(ConfigError, match="run train-generator"):
        HiddenStateValue(gen).load(tmp_path / "missing.npz")


def test_predictor_fitted_for_another_model_is_a_clear_error(tiny, samples, tmp_path):
    gen, _ = tiny
    value = HiddenStateValue(gen).fit(samples, [len(c.text) for c in samples])
    value.coef = value.coef[:-1]  # as if fitted on a model with a different hidden size
    value.mean, value.scale = value.mean[:-1], value.scale[:-1]
    with pytest.raises(ConfigError, match="refit it"):
        value(samples[:2])


def test_value_model_trains_on_every_prefix_and_loads_as_a_value_scorer(tiny_dirs, tmp_path):
    """`train_value_model` writes a sequence classifier that `load_value('model')` serves as a
    value predictor on prefixes: calls booked as value calls, one finite score per prefix."""
    from forethought.lm.artifacts.pretrain import PretrainConfig, train_value_model
    from forethought.lm.artifacts.shipped import load_value
    from forethought.lm.generator import Generator

    gen_dir, _ = tiny_dirs
    cfg = PretrainConfig(value_model_problems=4, value_model_steps=3, batch=8, max_new_tokens=12)
    logged = []
    train_value_model(Path(gen_dir), tmp_path / "value_model", cfg, log=logged.append)
    assert any("value model step" in line for line in logged)
    gen = Generator.from_pretrained(gen_dir)
    value = load_value("model", tmp_path, gen)
    cands = gen.generate("1,2>3:", 3, 12, Account(Budget(36)))
    prefixes = [gen.prefix(c, 2) for c in cands] + cands
    account = Account(Budget(1, max_value_calls=len(prefixes)))
    scores = value(prefixes, account)
    assert scores.shape == (len(prefixes),) and np.isfinite(scores).all()
    assert account.spent.value_calls == len(prefixes) and account.spent.reward_calls == 0


def test_missing_value_model_says_how_to_make_one(tiny, tmp_path):
    from forethought.lm.artifacts.shipped import load_value

    gen, _ = tiny
    with pytest.raises(ConfigError, match="train-reward"):
        load_value("model", tmp_path, gen)
