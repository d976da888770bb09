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
