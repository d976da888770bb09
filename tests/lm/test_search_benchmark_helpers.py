"""The step-search benchmark's own helpers: settings overrides refuse bad input in one line, and
the win-rate interval is a function of the per-prompt golds (ties half), as the win rate is."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import lm_search_steps as steps
from forethought.lm import compare


def test_overrides_cast_to_the_field_type_and_refuse_bad_input():
    base = compare.SearchSettings()
    changed = steps.with_overrides(base, ["widen=2", "mcts_batch=8", "backup=max"])
    assert (changed.widen, changed.mcts_batch, changed.backup) == (2.0, 8, "max")
    assert base.widen == 1.0  # the defaults are left alone
    for bad, says in [
        ("nope=1", "KEY a search setting"),
        ("widen", "KEY=VALUE"),
        ("widen=wide", "of type float"),
        ("mcts_batch=1.5", "of type int"),
    ]:
        with pytest.raises(SystemExit) as stop:
            steps.with_overrides(base, [bad])
        assert says in str(stop.value) and "\n" not in str(stop.value)


def test_budgets_parse_sorted_and_at_least_one_answer():
    assert steps._parse_budgets("1024, 256,256", 24) == [256, 1024]
    for bad in ("16,256", "x", ""):
        with pytest.raises(SystemExit):
            steps._parse_budgets(bad, 24)


def test_win_interval_brackets_the_win_rate_and_ties_count_half():
    def rows(method, golds):
        return [
            {"method": method, "budget": 64, "prompt_index": i, "gold": g}
            for i, g in enumerate(golds)
        ]

    search = [1.0] * 30 + [0.5] * 20 + [0.0] * 10  # 30 wins, 20 ties, 10 losses
    records = rows("mcts", search) + rows("bon", [0.5] * 60)
    low, high = steps.win_interval(records, "mcts", 64)
    win_rate = (30 + 0.5 * 20) / 60
    assert low < win_rate < high and 0.5 < low and high < 0.85
    all_ties = steps.win_interval(rows("mcts", [0.5] * 60) + rows("bon", [0.5] * 60), "mcts", 64)
    assert all_ties == [0.5, 0.5]


def test_the_mix_search_runs_only_when_named():
    assert ("mix", "value") not in steps.SEARCHES  # not in the default benchmark
    assert steps._chosen("bon,mix(value)") == [("bon", None), ("mix", "value")]
    with pytest.raises(SystemExit, match="bon included"):
        steps._chosen("mix(value)")
    import lm_mcts_settings as shapes

    assert shapes.search_of(["mix_share=0.25"]) == "mix(value)"
    assert shapes.search_of(["widen=2"]) == "mcts(value)"
    assert not any(name.startswith("mix") for name in shapes.DEFAULT_SETTINGS)


def test_the_summary_names_the_best_by_win_rate_the_best_by_gold_and_the_fixed_pairs():
    def row(method, win, gold):
        return {"budget": 64, "method": method, "win_rate": win, "mean_gold": gold, "solved": 0.1}

    rows = [
        row("bon", 0.5, 0.50),
        row(steps.CONTROL, 0.6, 0.70),
        row("bon [blend]", 0.70, 0.65),  # most wins against Best-of-N, less gold than the control
        row("mcts(value) [blend]", 0.62, 0.72),  # most gold: matches the control
        row("mcts(value) [rank+policy]", 0.55, 0.60),
        row("mcts(value) [legal+proxy]", 0.99, 0.99),  # uses the rule: never a learned row
    ]
    (summary,) = steps.learned_vs_bon(rows, [64])
    assert (summary["best_learned"], summary["matches_control"]) == ("bon [blend]", False)
    assert summary["best_gold_learned"] == "mcts(value) [blend]"
    assert summary["best_gold_matches_control"] is True
    fixed = summary["fixed_pairs"]
    assert fixed["mcts(value) [blend]"]["matches_control"] is True
    assert fixed["mcts(value) [rank+policy]"] == {
        "win_rate_vs_bon": 0.55,
        "mean_gold": 0.60,
        "matches_control": False,
    }
    assert "dvts(value) [blend]" not in fixed  # not measured here
