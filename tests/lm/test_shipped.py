"""The shipped Countdown models: small, offline, loaded through from_pretrained, and useful."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from forethought.lm import Budget, best_of_n
from forethought.lm.assets import SHIPPED, load_countdown
from forethought.lm.cli import main
from forethought.lm.tasks import countdown

MAX_BYTES = 20 * 1024 * 1024


def test_assets_are_small_and_safetensors():
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    weights = [p.name for p in files if p.suffix in (".safetensors", ".bin", ".pt")]
    assert weights == ["model.safetensors"] * 2


@pytest.fixture(scope="module")
def suite():
    return load_countdown(SHIPPED, value="hidden")


def test_proxy_agrees_with_gold_on_demonstrations(suite):
    import random

    rng = random.Random(7)
    problems = countdown.make_problems(200, seed=30_000)
    cands, gold = [], []
    for p in problems:
        c = suite.generator.start(p.prompt, 1, 24)[0]
        demo = countdown.demonstration(p, rng)
        cands.append(type(c)(c.prompt, c.prompt_ids, text=demo, finished=True))
        gold.append(countdown.score(p.prompt, demo))
    assert spearmanr(suite.proxy(cands), gold).statistic > 0.3


def test_generator_answers_in_the_task_format(suite):
    torch.manual_seed(0)
    res = best_of_n(suite.generator, suite.proxy, "3,4,5>17:", Budget(400), max_new_tokens=24)
    assert any("=" in c.text and c.text.endswith(";") for c in res.finalists)


def test_compare_cli_runs_end_to_end(tmp_path, capsys):
    plot = tmp_path / "plot.png"
    argv = [
        "compare",
        "--prompts",
        "2",
        "--budget",
        "160",
        "--plot-budgets",
        "",
        "--plot",
        str(plot),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for method in ("bon", "lookahead", "prune", "beam"):
        assert method in out
    assert plot.stat().st_size > 0


@pytest.mark.slow
def test_search_beats_a_single_sample(suite):
    """Best-of-16 by the proxy must pick better answers (by gold) than one sample does."""
    problems = countdown.make_problems(60, seed=40_000)
    means = {}
    for n in (1, 16):
        golds = []
        for i, p in enumerate(problems):
            torch.manual_seed(i)
            res = best_of_n(
                suite.generator, suite.proxy, p.prompt, Budget(n * 24), max_new_tokens=24, n=n
            )
            golds.append(countdown.score(p.prompt, res.pick.text))
        means[n] = float(np.mean(golds))
    assert means[16] > means[1] + 0.05
