"""The judge blend: a fit that finds the informative judge and a file that round-trips (the
'blend' final pick and `lm train-blend` on tiny models are in test_step_search.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forethought.errors import ConfigError
from forethought.lm.blend import JudgeBlend, fit_blend, load_blend


def _pools(prompts: int = 200, samples: int = 16, seed: int = 0):
    """Gold depends on judge 0 only; judge 1 is noise on a much larger scale."""
    rng = np.random.default_rng(seed)
    informative = rng.normal(size=(prompts, samples))
    noise = rng.normal(scale=50.0, size=(prompts, samples))
    gold = 1 / (1 + np.exp(-3 * informative))
    return np.stack([informative, noise], -1), gold


def test_the_fit_weighs_the_judge_that_predicts_gold_and_its_pick_beats_the_rank_mean():
    features, gold = _pools()
    blend = fit_blend(features, gold, ("good", "noise"))
    assert blend.weights[0] > 5 * abs(blend.weights[1])
    test_x, test_gold = _pools(seed=1)
    rows = np.arange(len(test_gold))
    scores = blend.score(test_x.reshape(-1, 2)).reshape(test_gold.shape)
    picked = test_gold[rows, scores.argmax(1)].mean()
    ranked = test_gold[rows, test_x.argsort(1).argsort(1).mean(2).argmax(1)].mean()
    assert picked > test_gold.max(1).mean() - 0.005  # (almost always) the best answer
    assert picked > ranked + 0.05
    again = fit_blend(features, gold, ("good", "noise"))
    assert np.array_equal(again.weights, blend.weights)  # full batch from zeros: no randomness


def _gated_pools(prompts: int = 300, samples: int = 16, seed: int = 0):
    """Gold is judge 0 where judge 1 is positive (a legal answer) and 0 elsewhere: a gate."""
    rng = np.random.default_rng(seed)
    quality, legal = rng.normal(size=(2, prompts, samples))
    gold = np.where(legal > 0, 1 / (1 + np.exp(-3 * quality)), 0.0)
    return np.stack([quality, legal], -1), gold


def test_a_hidden_layer_learns_the_gate_a_linear_blend_cannot():
    """A linear score must trade quality against legality; the tanh units learn to rank by
    quality among the legal answers only, and pick better on pools they were not fitted on."""
    features, gold = _gated_pools()
    test_x, test_gold = _gated_pools(seed=1)
    rows = np.arange(len(test_gold))

    def picked(blend):
        scores = blend.score(test_x.reshape(-1, 2)).reshape(test_gold.shape)
        return test_gold[rows, scores.argmax(1)].mean()

    linear = fit_blend(features, gold, ("quality", "legal"))
    gated = fit_blend(features, gold, ("quality", "legal"), hidden=8, steps=1000)
    assert linear.hidden_in is None and gated.hidden_in.shape == (2, 8)
    assert picked(gated) > picked(linear) + 0.05  # measured: 0.928 against 0.809
    assert picked(gated) > test_gold.max(1).mean() - 0.05  # the best answer: 0.946
    again = fit_blend(features, gold, ("quality", "legal"), hidden=8, steps=1000)
    assert np.array_equal(again.hidden_out, gated.hidden_out)  # seeded: same fit


def test_blend_round_trips_through_its_file_and_refuses_bad_ones(tmp_path):
    assert load_blend(tmp_path / "blend.json") is None
    blend = JudgeBlend(
        ("a", "b"), np.array([1.0, 2.0]), np.array([0.5, 4.0]), np.array([3.0, -1.0])
    )
    (tmp_path / "blend.json").write_text(json.dumps({"blend": blend.to_dict()}))
    loaded = load_blend(tmp_path / "blend.json")
    x = np.array([[1.0, 2.0], [2.0, 6.0]])
    assert np.allclose(loaded.score(x), [0.0, 3.0 * 2.0 - 1.0])
    with pytest.raises(ValueError, match="2 judge scores"):
        loaded.score(np.zeros((3, 3)))
    (tmp_path / "blend.json").write_text(json.dumps({"weights": [1]}))
    with pytest.raises(ConfigError, match="is not a judge blend"):
        load_blend(tmp_path / "blend.json")
    layered = JudgeBlend(blend.judges, blend.mean, blend.std, blend.weights,
                         np.ones((2, 1)), np.zeros(1), np.array([2.0]))  # fmt: skip
    (tmp_path / "blend.json").write_text(json.dumps({"blend": layered.to_dict()}))
    z = (x - blend.mean) / blend.std
    expected = z @ blend.weights + 2.0 * np.tanh(z.sum(1))
    assert np.allclose(load_blend(tmp_path / "blend.json").score(x), expected)
    half = {k: v for k, v in layered.to_dict().items() if k != "hidden_out"}
    (tmp_path / "blend.json").write_text(json.dumps({"blend": half}))
    with pytest.raises(ConfigError, match="needs hidden_in, hidden_bias and hidden_out"):
        load_blend(tmp_path / "blend.json")
