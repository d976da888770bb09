"""`forethought lm explain`: a search records its tree without changing what it does; the tree
adds up (tokens, scores, pruning, the pick); the command writes explain.json and explain.png and
rejects bad input in one line before loading anything."""

from __future__ import annotations

import json

import pytest
import torch

from forethought.cli import main
from forethought.lm import (
    Budget,
    FunctionReward,
    beam_search,
    best_of_n,
    lookahead,
    prune,
    sample_then_search,
)
from forethought.lm.artifacts.shipped import SHIPPED, load_countdown
from forethought.lm.compare import SearchSettings, run_method
from forethought.lm.explain import explain, render_text
from forethought.lm.search import Trace

METHODS = ["bon", "lookahead", "prune", "beam"]
PROMPT = "3,4,5>17:"
COUNTDOWN = "3,7,6,5>9:"


def _tiny_search(method, gen, rm, budget, trace):
    value = FunctionReward(lambda p, r: r.count("+") - 0.01 * len(r), kind="value", name="toy")
    kw = {"max_new_tokens": 12} | ({} if trace is None else {"trace": trace})  # None: default
    if method == "bon":
        return best_of_n(gen, rm, PROMPT, budget, **kw)
    if method == "lookahead":
        return lookahead(gen, rm, value, PROMPT, budget, prefix_tokens=4, keep=2, **kw)
    if method == "prune":
        return prune(gen, rm, PROMPT, budget, chunk=4, **kw)
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    if method == "mix":
        return sample_then_search(
            gen, rm, value, PROMPT, budget, step_delimiters=delims, step_tokens=4, **kw
        )
    return beam_search(gen, rm, value, PROMPT, budget, step_delimiters=delims, step_tokens=4, **kw)


def _same(a, b) -> None:
    """Two search results are the same search: pick, score, spend and every finalist."""
    assert a.pick.token_ids == b.pick.token_ids and a.score == b.score
    assert a.spent.as_dict() == b.spent.as_dict()
    assert [c.token_ids for c in a.finalists] == [c.token_ids for c in b.finalists]
    assert a.finalist_scores.tolist() == b.finalist_scores.tolist()


def _check_tree(trace: Trace, res) -> None:
    """Everything the explanation claims is consistent with the search result."""
    nodes = trace.nodes
    assert trace.tokens == res.spent.tokens  # every sampled token sits in exactly one node
    for n in nodes[1:]:
        parent = nodes[n.parent]
        assert n.id in parent.children and n.depth == parent.depth + 1
        assert n.token_ids[: len(parent.token_ids)] == parent.token_ids
        assert len(n.token_ids) - len(parent.token_ids) == n.tokens
    for n in nodes:
        if n.pruned_round is not None:  # scored in the round that pruned it, never grown after
            assert n.score is not None and n.scored_round == n.pruned_round
            assert not n.children and n.final_score is None
    pool = [n for n in nodes if n.final_score is not None]
    assert len(pool) == len(res.finalists)
    assert sorted(n.final_score for n in pool) == sorted(res.finalist_scores.tolist())
    picked = [n for n in nodes if n.picked]
    assert len(picked) == 1 and picked[0].status == "picked"
    assert picked[0].final_score == res.score and tuple(picked[0].token_ids) == res.pick.token_ids


@pytest.mark.parametrize("method", [*METHODS, "mix"])
def test_recording_changes_nothing_and_the_tree_adds_up(tiny, method):
    gen, rm = tiny
    budget = Budget(max_tokens=160, max_reward_calls=30)
    torch.manual_seed(5)
    plain = _tiny_search(method, gen, rm, budget, None)
    torch.manual_seed(5)
    trace = Trace(PROMPT)
    recorded = _tiny_search(method, gen, rm, budget, trace)
    _same(plain, recorded)
    _check_tree(trace, recorded)
    assert trace.pick().complete  # the random model never stops early: the pick hits its cap


@pytest.fixture(scope="module")
def suite():
    return load_countdown(SHIPPED)


@pytest.mark.parametrize("method", METHODS)
def test_shipped_models_tree_matches_the_unrecorded_search(suite, method):
    budget, settings = Budget(max_tokens=96), SearchSettings()
    torch.manual_seed(11)
    plain = run_method(suite, method, COUNTDOWN, budget, settings)
    torch.manual_seed(11)
    res, trace = explain(suite, method, COUNTDOWN, budget, settings)
    _same(plain, res)
    _check_tree(trace, res)
    pool = [n for n in trace.nodes if n.final_score is not None]
    assert all(n.gold is not None for n in pool)  # every final answer judged by gold
    if method != "bon":
        assert any(n.status == "pruned" for n in trace.nodes)  # partials were ranked
    lines = render_text(trace, res, method, 96)
    assert len(lines) == len(trace.nodes) + 1  # a header of two lines, one line per node
    assert sum("<== PICK" in line for line in lines) == 1


def test_cli_writes_the_tree_and_its_drawing(tmp_path, capsys):
    out = tmp_path / "ex"
    argv = ["lm", "explain", COUNTDOWN, "--method", "prune", "--budget", "96", "--seed", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "<== PICK" in text and "explain.png" in text
    tree = json.loads((out / "explain.json").read_text())
    assert (out / "explain.png").stat().st_size > 10_000
    nodes = tree["nodes"]
    assert sum(n["tokens"] for n in nodes) == tree["spent"]["tokens"] <= 96
    pick = nodes[tree["pick"]["node"]]
    assert pick["status"] == "picked" and pick["text"] == tree["pick"]["text"]
    assert {n["status"] for n in nodes} >= {"picked", "pruned"}
    # The same seed and budget give `lm generate` the same pick: explain shows that search.
    argv[1] = "generate"
    assert main(argv) == 0
    assert f"response: {pick['text']}\n" in capsys.readouterr().out


BAD = {
    "empty prompt": (["", "--method", "bon"], "error: PROMPT: is empty"),
    "not a Countdown prompt": (["hello", "--method", "bon"], "error: PROMPT: 'hello' is not a"),
    "unknown method": (
        [COUNTDOWN, "--method", "alphazero"],
        "error: --method: unknown method 'alphazero'",
    ),
    "budget below one answer": (
        [COUNTDOWN, "--budget", "10"],
        "error: --budget: a budget of 10 tokens cannot pay for one candidate",
    ),
    "zero budget": ([COUNTDOWN, "--budget", "0"], "error: --budget: must be at least 1 token"),
    "out is a file": ([COUNTDOWN, "--out", "{tmp}/file"], "error: --out: {tmp}/file is a file"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line(name, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    argv, expected = BAD[name]
    code = main(["lm", "explain", *(a.format(tmp=tmp_path) for a in argv)])
    output = "".join(capsys.readouterr())
    assert code == 2 and output.startswith(expected.format(tmp=tmp_path)), output
    assert output.count("\n") == 1 and "Traceback" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


def test_help_lists_every_option_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["lm", "explain", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "(default" in out
    for flag in ("--method", "--budget", "--seed", "--out"):
        assert flag in out
