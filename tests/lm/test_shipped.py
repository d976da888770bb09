"""The shipped Countdown models: small, offline, loaded through from_pretrained, and useful."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from forethought.cli import main
from forethought.lm import Budget, best_of_n
from forethought.lm.artifacts.shipped import ASSETS, SHIPPED, load_countdown
from forethought.lm.tasks import countdown

MAX_BYTES = 20 * 1024 * 1024


def test_assets_are_small_and_safetensors():
    files = [p for p in ASSETS.rglob("*") if p.is_file()]  # every built-in task's models
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    for task in countdown.TASKS:
        weights = sorted(
            p.relative_to(ASSETS / task).parts[0]
            for p in files
            if p.suffix in (".safetensors", ".bin", ".pt") and ASSETS / task in p.parents
        )
        assert weights == ["generator", "prm", "proxy", "value_model"], task


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


def test_value_model_ranks_partial_answers_better_than_the_ridge_probe(suite):
    """On fresh prompts, the shipped transformer value model must order two-step prefixes of
    one prompt's samples by their final gold score (held-out measurement: Spearman ~0.65 at 12
    tokens, the ridge probe on hidden states ~0.3)."""
    from forethought.lm import Account
    from forethought.lm.artifacts.shipped import load_value

    model = load_value("model", SHIPPED, suite.generator)
    rhos = {"model": [], "hidden": []}
    for i, p in enumerate(countdown.make_problems(25, seed=50_000)):
        torch.manual_seed(i)
        cands = suite.generator.generate(p.prompt, 8, 24, Account(Budget(8 * 24)))
        gold = [countdown.score(c.prompt, c.text) for c in cands]
        prefixes = [suite.generator.prefix(c, 12) for c in cands]
        for name, scorer in (("model", model), ("hidden", suite.value)):
            pred = scorer(prefixes)
            if np.ptp(gold) > 0 and np.ptp(pred) > 0:
                rhos[name].append(spearmanr(pred, gold).statistic)
    assert np.mean(rhos["model"]) > 0.45
    assert np.mean(rhos["model"]) > np.mean(rhos["hidden"]) + 0.1


def test_generator_answers_in_the_task_format(suite):
    torch.manual_seed(0)
    res = best_of_n(suite.generator, suite.proxy, "3,4,5>17:", Budget(400), max_new_tokens=24)
    assert any("=" in c.text and c.text.endswith(";") for c in res.finalists)


def test_compare_cli_runs_end_to_end(tmp_path, capsys):
    plot = tmp_path / "plot.png"
    argv = [
        "lm",
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
    # Output is not a terminal here: one plain line per method, no table or progress redraws.
    lines = out.splitlines()
    for method in ("bon", "lookahead", "prune", "beam"):
        assert sum(line.startswith(f"{method}: gold ") for line in lines) == 1
    assert "\r" not in out and "━" not in out
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


def test_shipped_prm_tells_solved_answers_from_unsolved(suite):
    """On fresh prompts the PRM's last-step score must rank solved answers above unsolved ones
    (measured on these prompts: AUROC 0.99), with no legality rule anywhere."""
    from sklearn.metrics import roc_auc_score

    from forethought.lm import Account
    from forethought.lm.artifacts.shipped import load_prm

    prm = load_prm(SHIPPED)
    cands = []
    for i, p in enumerate(countdown.make_problems(40, seed=60_000)):
        torch.manual_seed(i)
        cands += suite.generator.generate(p.prompt, 8, 24, Account(Budget(8 * 24)))
    solved = [countdown.score(c.prompt, c.text) == 1.0 for c in cands]
    assert 10 < sum(solved) < len(cands) - 10
    assert roc_auc_score(solved, prm(cands)) > 0.9  # measured 0.99 (the proxy: 0.98)
