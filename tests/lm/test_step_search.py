"""Step-level tree search (MCTS, DVTS), the process reward model and the final picks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from forethought.errors import ConfigError
from forethought.lm import Budget, FunctionReward, Spend, best_of_n, dvts, mcts, sample_then_search
from forethought.lm.generator import Candidate
from forethought.lm.prm import AggregatedPRM, ProcessRewardModel
from forethought.lm.search import SearchResult, Trace, rank_mean, vote
from forethought.lm.search.step_tree import StepTree, best_leaf, run_rounds
from forethought.lm.tasks import countdown

# -- MCTS on a synthetic tree whose values are known -------------------------------------------
DEPTH, BRANCH = 3, 3
BEST = (2, 0, 2)


def _leaf_value(path: tuple[int, ...]) -> float:
    """Known leaf values: 1.0 at BEST, the others spread over [0, 0.5)."""
    if path == BEST:
        return 1.0
    return (sum(b * 3**i for i, b in enumerate(path)) * 7 % 27) / 54


def _exact_value(path: tuple[int, ...]) -> float:
    """The best leaf value reachable below `path` (what a perfect evaluator would say)."""
    if len(path) == DEPTH:
        return _leaf_value(path)
    return max(_exact_value((*path, b)) for b in range(BRANCH))


def _run_synthetic(expansions: int, seed: int, backup: str) -> StepTree:
    rng = np.random.default_rng(seed)
    tree = StepTree((), c_puct=0.3, widen=1.0, alpha=0.5, backup=backup)
    left = [expansions]

    def expand(nodes):
        out = []
        for n in nodes:  # the policy samples a uniformly random next step
            child = (*n.state, int(rng.integers(BRANCH)))
            out.append((child, child, 1.0, len(child) == DEPTH))
        left[0] -= len(nodes)
        return out

    def evaluate(states):
        return np.array([_exact_value(s) for s in states])

    run_rounds(tree, expand, evaluate, batch=1, affordable=lambda rows: max(0, min(rows, left[0])))
    return tree


def _found(tree: StepTree) -> bool:
    return best_leaf(tree, lambda s: np.array([_leaf_value(x) for x in s])) == BEST


def test_mcts_finds_the_best_leaf_of_a_known_tree():
    # 27 leaves, 39 nodes; 30 sampled steps (repeats included) cannot enumerate the tree, and
    # random sampling of the same 30 steps (10 root-to-leaf paths) finds BEST about 1 time in 3.
    hits = sum(_found(_run_synthetic(30, seed, "max")) for seed in range(20))
    assert hits >= 19
    rng = np.random.default_rng(0)
    random_hits = sum(
        BEST in {tuple(rng.integers(BRANCH, size=DEPTH)) for _ in range(10)} for _ in range(20)
    )
    assert random_hits <= 12
    # Mean backup (the default for learned scorers) is less greedy but still guided.
    assert sum(_found(_run_synthetic(40, seed, "mean")) for seed in range(20)) > random_hits


def test_mcts_visits_concentrate_on_the_best_branch():
    tree = _run_synthetic(30, seed=0, backup="max")
    visits = {k: c.visits for k, c in tree.root.children.items()}
    assert max(visits, key=visits.get) == BEST[:1]


def test_step_tree_rejects_bad_knobs():
    with pytest.raises(ConfigError, match="c_puct"):
        StepTree((), c_puct=-1.0, widen=1.0, alpha=0.5)
    with pytest.raises(ConfigError, match="backup"):
        StepTree((), c_puct=1.0, widen=1.0, alpha=0.5, backup="median")


# -- MCTS and DVTS on tiny random models from disk ---------------------------------------------
@pytest.mark.parametrize("search", [mcts, dvts, sample_then_search])
def test_step_searches_run_from_disk_and_spend_within_budget(tiny, search):
    gen, rm = tiny
    value = FunctionReward(lambda p, r: len(set(r)) / 10, kind="value", name="toy value")
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    torch.manual_seed(0)
    budget = Budget(max_tokens=120)
    res = search(gen, rm, value, "2,9>11:", budget, max_new_tokens=10, step_delimiters=delims)
    assert 0 < res.spent.tokens <= 120
    assert res.pick in res.finalists
    assert res.spent.value_calls > 0 and res.spent.reward_calls == len(res.finalists)
    torch.manual_seed(0)
    again = search(gen, rm, value, "2,9>11:", budget, max_new_tokens=10, step_delimiters=delims)
    assert again.pick.text == res.pick.text and again.spent == res.spent  # same seed, same result


@pytest.mark.parametrize("search", [mcts, dvts, sample_then_search])
def test_step_searches_need_a_step_delimiter(tiny, search):
    gen, rm = tiny
    value = FunctionReward(lambda p, r: 0.0, kind="value")
    with pytest.raises(ConfigError, match="step-delimiters: give at least one"):
        search(gen, rm, value, "2,9>11:", Budget(100), max_new_tokens=10, step_delimiters=set())


def test_mix_pools_samples_and_tree_under_one_budget(tiny):
    gen, rm = tiny
    value = FunctionReward(lambda p, r: len(set(r)) / 10, kind="value", name="toy value")
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    prompt, budget = "2,9>11:", Budget(max_tokens=120, max_reward_calls=20)

    def run(search, **kw):
        torch.manual_seed(3)
        return search(gen, rm, value, prompt, budget, max_new_tokens=10, **kw)

    mixed = run(sample_then_search, share=0.5, step_delimiters=delims)
    torch.manual_seed(3)
    sampled = best_of_n(gen, rm, prompt, Budget(60, 10), max_new_tokens=10)
    assert mixed.finalists[: len(sampled.finalists)] == sampled.finalists  # samples come first
    assert len(mixed.finalists) > len(sampled.finalists)  # and the tree added its answers
    assert mixed.spent.tokens <= 120 and mixed.spent.reward_calls <= 20
    assert mixed.spent.value_calls > 0 and mixed.pick in mixed.finalists
    assert mixed.score == mixed.finalist_scores.max()
    tree = run(mcts, step_delimiters=delims)
    only_tree = run(sample_then_search, share=0.0, step_delimiters=delims)
    assert only_tree.pick.text == tree.pick.text and only_tree.spent == tree.spent
    only_samples = run(sample_then_search, share=1.0, step_delimiters=delims)
    torch.manual_seed(3)
    alone = best_of_n(gen, rm, prompt, budget, max_new_tokens=10)
    assert only_samples.pick.text == alone.pick.text and only_samples.spent == alone.spent


def test_mix_refuses_a_share_outside_zero_to_one_and_bad_tree_settings(tiny):
    gen, rm = tiny
    value = FunctionReward(lambda p, r: 0.0, kind="value")
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    with pytest.raises(ConfigError, match="mix-share: must be between 0 and 1"):
        sample_then_search(
            gen, rm, value, "2,9>11:", Budget(100), share=1.5, max_new_tokens=10,
            step_delimiters=delims,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="batch and step_tokens"):  # not hidden by the samples
        sample_then_search(
            gen, rm, value, "2,9>11:", Budget(100), max_new_tokens=10, step_delimiters=delims,
            batch=0,
        )  # fmt: skip


def test_mcts_records_its_tree(tiny):
    from forethought.lm.search import Trace

    gen, rm = tiny
    value = FunctionReward(lambda p, r: len(r) / 10, kind="value")
    trace = Trace("2,9>11:")
    torch.manual_seed(1)
    res = mcts(
        gen,
        rm,
        value,
        "2,9>11:",
        Budget(80),
        max_new_tokens=10,
        step_delimiters={gen.tokenizer.convert_tokens_to_ids(";")},
        trace=trace,
    )
    assert trace.tokens == res.spent.tokens
    assert trace.pick() is not None


# -- the final picks ---------------------------------------------------------------------------
def _cand(text: str) -> Candidate:
    return Candidate("1,2>3:", (1,), (2,), text, finished=True)


def test_weighted_vote_picks_the_heaviest_answer_not_the_single_best():
    finalists = [_cand("1+2=3;"), _cand("2*1=2;"), _cand("2+1=3;"), _cand("1*2=2;")]
    result = SearchResult(
        "bon",
        finalists[1],
        0.9,
        Spend(),
        finalists,
        np.array([0.5, 0.9, 0.6, 0.1]),
    )
    voted = vote(result, countdown.final_answer)
    assert voted.pick.text == "2+1=3;"  # answer 3 weighs 1.1 against answer 2's 1.0


def test_rank_mean_weighs_judges_on_any_scale_equally():
    """A logit judge and a probability judge disagree on the best of three; the candidate both
    put second-or-better wins, and a judge's scale (x1000) changes nothing."""
    logits = np.array([5.0, 1.0, -3.0])
    probs = np.array([0.1, 0.9, 0.8])
    assert rank_mean([logits, probs]).tolist() == [2.0, 2.5, 1.5]
    assert rank_mean([logits * 1000, probs]).tolist() == [2.0, 2.5, 1.5]
    assert rank_mean([np.array([1.0, 1.0, 0.0])]).tolist() == [2.5, 2.5, 1.0]  # ties share


def test_prm_refuses_a_path_that_is_not_a_classifier(tiny_dirs):
    gen_dir, _ = tiny_dirs
    with pytest.raises(ConfigError, match="classification head"):
        ProcessRewardModel.from_pretrained(gen_dir, step_delimiter=";")


def test_prm_refuses_a_classifier_with_two_logits(tmp_path, tiny_dirs):
    from transformers import AutoConfig, AutoTokenizer, GPT2ForSequenceClassification

    _, rm_dir = tiny_dirs
    config = AutoConfig.from_pretrained(rm_dir)
    config.num_labels = 2
    GPT2ForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(rm_dir).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="one output logit"):
        ProcessRewardModel.from_pretrained(str(tmp_path), step_delimiter=";")


def test_prm_scores_every_step_in_one_call(tiny_dirs):
    _, rm_dir = tiny_dirs
    prm = ProcessRewardModel.from_pretrained(rm_dir, step_delimiter=";")
    cands = [_cand("1+2=3;"), _cand("1+1=2;2+1=3;"), _cand("1+1=2;2+")]
    steps = prm.step_scores(cands)
    assert [len(s) for s in steps] == [1, 2, 2]  # a trailing unfinished step counts too
    assert all(((s > 0) & (s < 1)).all() for s in steps)
    full = prm(cands)
    assert np.allclose(full, [s[-1] for s in steps], atol=1e-5)  # last token = last step
    agg = AggregatedPRM(prm, "min")(cands)
    assert np.allclose(agg, [s.min() for s in steps])
    with pytest.raises(ConfigError, match="aggregate"):
        AggregatedPRM(prm, "mean")


# -- the harder task ---------------------------------------------------------------------------
def test_hard_task_has_five_or_six_numbers_and_four_or_five_steps():
    task = countdown.get_task("countdown-hard")
    problems = task.make_problems(200, seed=3)
    assert {len(p.numbers) for p in problems} == {5, 6}
    assert {len(p.solution) for p in problems} == {4, 5}
    for p in problems[:50]:  # every made solution is solved under the task's own rules
        assert task.score(p.prompt, ";".join(p.solution) + ";") == 1.0
    assert max(p.target for p in problems) > countdown.DEFAULT.max_result


def test_default_task_problems_are_unchanged():
    # The published numbers were measured on these prompts; the task refactor must keep them.
    first = [p.prompt for p in countdown.make_problems(3, seed=20_000)]
    assert first == ["3,7,6,5>9:", "5,4,4>24:", "9,7,4>12:"]


def test_unknown_task_is_a_one_line_error():
    with pytest.raises(ConfigError, match="countdown-hard"):
        countdown.get_task("sudoku")


# -- train-prm and compare from the command line on tiny models ---------------------------------
@pytest.fixture(scope="module")
def tiny_prm_assets(tiny_dirs, tmp_path_factory):
    """Tiny random Countdown models (generator, proxy, value model) plus a PRM trained on them
    by `forethought lm train-prm`."""
    import shutil

    from forethought.cli import main

    gen_dir, rm_dir = tiny_dirs
    root = tmp_path_factory.mktemp("prm_assets")
    shutil.copytree(gen_dir, root / "generator")
    shutil.copytree(rm_dir, root / "proxy")
    shutil.copytree(rm_dir, root / "value_model")
    args = ["--problems", "6", "--samples", "2", "--rollouts", "2", "--steps", "3"]
    args += ["--outcomes", "2", "--pick-samples", "4", "--eval-problems", "3"]
    code = main(["lm", "train-prm", "--out", str(root), *args])
    assert code == 0
    return root


def test_train_prm_writes_a_loadable_prm_and_its_report(tiny_prm_assets):
    report = json.loads((tiny_prm_assets / "prm.json").read_text())
    held = report["held_out"]["all"]
    assert {"accuracy", "brier", "ece", "spearman", "auroc_any_solved"} <= set(held)
    assert 0.0 <= held["accuracy"] <= 1.0 and held["steps"] > 0
    assert report["config"]["rollouts"] == 2 and report["task"] == "countdown"
    pick = report["pick"]
    assert pick["prompts"] == 3 and pick["samples"] == 4
    assert 0.0 <= pick["random_pick_solved"] <= pick["any_solved"] <= 1.0
    assert pick["pick_solved"] <= pick["any_solved"]  # a pick is solved only if some sample is
    assert pick["pick_solved"] + pick["pick_on_target_unsolved"] <= 1.0
    prm = ProcessRewardModel.from_pretrained(str(tiny_prm_assets / "prm"), step_delimiter=";")
    assert prm.model.config.num_labels == 1


def test_compare_runs_tree_searches_with_the_prm(tiny_prm_assets, tmp_path, capsys):
    from forethought.cli import main

    code = main(["lm", "compare", "--assets", str(tiny_prm_assets), "--methods", "dvts,mcts",
                 "--process", "prm", "--final", "vote", "--prompts", "2", "--budget", "48",
                 "--max-new-tokens", "10", "--plot-budgets", "", "--plot",
                 str(tmp_path / "p.png"), "--json", str(tmp_path / "rows.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["method"] for r in rows} == {"bon", "dvts", "mcts"}
    assert all(r["mean_tokens"] <= 48 for r in rows)
    assert all(r["mean_value_calls"] > 0 for r in rows)  # the PRM scored, as value calls


def test_repick_books_each_final_pick_exactly(tiny_prm_assets):
    from forethought.lm import compare
    from forethought.lm.artifacts.shipped import load_countdown

    suite = load_countdown(tiny_prm_assets)
    settings = compare.SearchSettings(max_new_tokens=10, process="prm")
    torch.manual_seed(0)
    res = compare.run_method(suite, "beam", "2,9>11:", Budget(60), settings)
    picks = compare.repick(suite, res, ["prm-min", "legal+proxy", "vote"])
    n = len(res.finalists)
    assert picks["legal+proxy"].spent == res.spent  # same answers, same number of RM calls
    for name in ("prm-min", "vote"):
        assert picks[name].spent.reward_calls == res.spent.reward_calls - n
        assert picks[name].spent.value_calls == res.spent.value_calls + n
        assert picks[name].pick in res.finalists


def test_mcts_passes_its_backup_rule_to_the_tree(tiny):
    gen, rm = tiny
    value = FunctionReward(lambda p, r: 0.0, kind="value")
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    with pytest.raises(ConfigError, match="backup"):
        mcts(gen, rm, value, "2,9>11:", Budget(100), max_new_tokens=10,
             step_delimiters=delims, backup="median")  # fmt: skip


def test_outcome_labels_sit_where_the_prm_reads_an_answers_last_score(tiny, tiny_dirs):
    """An exact outcome label is put on the token whose head `step_scores` reads last (with or
    without end-of-sequence, with or without a final delimiter), so the PRM learns the very
    score that a final pick by its last step uses."""
    from dataclasses import replace

    from forethought.lm.artifacts.train_prm import outcome_label, outcome_labels

    gen, _ = tiny
    prm = ProcessRewardModel.from_pretrained(tiny_dirs[1], step_delimiter=";")
    task, prompt = countdown.DEFAULT, "1,2,4>12:"
    start = gen.start(prompt, 1, 24)[0]
    for text, eos, solved in [("1+2=3;3*4=12;", True, True), ("1+2=3;3*4=12", False, True),
                              ("5+2=7;7+5=12;", True, False), ("1+2=3;3*", False, False)]:  # fmt: skip
        ids = tuple(gen.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids += (gen.eos_id,) if eos else ()
        row = outcome_label(replace(start, token_ids=ids, text=text), task, gen.eos_id)
        assert row.labels == [float(solved)] and row.solved == solved
        trained_on = list(start.prompt_ids + ids[: row.ends[0]])
        with torch.no_grad():
            hidden = prm.model.transformer(input_ids=torch.tensor([trained_on])).last_hidden_state
            logit = prm.model.score(hidden)[0, -1, 0]
        read = prm.step_scores([row.sample])[0][-1]
        assert read == pytest.approx(torch.sigmoid(logit).item(), abs=1e-5)
    rows = outcome_labels(gen, task, [prompt] * 3, samples=2, max_new_tokens=8, eos_id=gen.eos_id)
    assert len(rows) == 6 and all(len(r.labels) == 1 for r in rows)


def test_rank_pick_reads_the_whole_pool_and_books_every_judge(tiny_prm_assets):
    """'rank' runs the proxy-picked search, then the value model and the PRM read every
    finished answer once: tokens and reward calls as the proxy's search, 2 value calls more
    per answer, and the pick is the best mean rank of the three judges' own scores."""
    from dataclasses import replace

    from forethought.lm import compare
    from forethought.lm.artifacts.shipped import load_countdown

    suite = load_countdown(tiny_prm_assets)
    settings = compare.SearchSettings(max_new_tokens=10, process="prm")
    budget = Budget(60, max_reward_calls=12)
    torch.manual_seed(0)
    plain = compare.run_method(suite, "beam", "2,9>11:", budget, settings)
    torch.manual_seed(0)
    trace = Trace("2,9>11:")
    ranked = compare.run_method(
        suite, "beam", "2,9>11:", budget, replace(settings, final="rank"), trace=trace
    )
    n = len(plain.finalists)
    assert [c.text for c in ranked.finalists] == [c.text for c in plain.finalists]
    assert ranked.spent.tokens == plain.spent.tokens <= 60
    assert ranked.spent.reward_calls == plain.spent.reward_calls <= 12
    assert ranked.spent.value_calls == plain.spent.value_calls + 2 * n
    judges = [
        suite.proxy(plain.finalists),
        suite.value(plain.finalists),
        AggregatedPRM(suite.prm, "last")(plain.finalists),
    ]
    best = int(np.argmax(rank_mean(judges)))
    assert ranked.pick.text == plain.finalists[best].text
    assert sum(node.picked for node in trace.nodes) == 1 and trace.node(ranked.pick).picked
    with pytest.raises(ConfigError, match="value calls"):
        compare.run_method(
            suite, "bon", "2,9>11:", Budget(60, max_value_calls=100),
            replace(settings, final="rank"),
        )  # fmt: skip


def test_policy_pick_is_the_answer_the_generator_finds_likeliest_per_token(tiny_prm_assets):
    """'policy' re-reads the proxy-picked search's pool by the generator's own mean token
    log-probability, which sampling recorded: no call is booked for it, the proxy's final
    calls are given back, and 'rank+policy' books what 'rank' does."""
    from dataclasses import replace

    from forethought.lm import compare
    from forethought.lm.artifacts.shipped import load_countdown
    from forethought.lm.search.common import policy_likelihood, policy_weakest_token

    suite = load_countdown(tiny_prm_assets)
    settings = compare.SearchSettings(max_new_tokens=10, process="prm")
    torch.manual_seed(0)
    plain = compare.run_method(suite, "mcts", "2,9>11:", Budget(80), settings)
    n = len(plain.finalists)
    gen = suite.generator
    for cand in plain.finalists:  # the recorded log-probability is the model's, token by token
        ids = torch.tensor([cand.prompt_ids + cand.token_ids])
        with torch.no_grad():
            logits = gen.model(ids).logits[0, len(cand.prompt_ids) - 1 : -1].log_softmax(-1)
        per_token = logits.gather(1, torch.tensor(cand.token_ids)[:, None])[:, 0]
        assert cand.logprob == pytest.approx(per_token.sum().item(), abs=1e-4)
        assert cand.token_logprobs == pytest.approx(per_token.tolist(), abs=1e-4)
        assert policy_weakest_token([cand])[0] == pytest.approx(per_token.min().item(), abs=1e-4)
        head = gen.prefix(cand, 2)  # a prefix keeps its own tokens' log-probabilities only
        assert head.token_logprobs == cand.token_logprobs[:2]
        assert head.logprob == pytest.approx(per_token[:2].sum().item(), abs=1e-4)
    picks = compare.repick(suite, plain, ["policy", "rank", "rank+policy"])
    likely = policy_likelihood(plain.finalists)
    assert picks["policy"].pick == plain.finalists[int(np.argmax(likely))]
    assert picks["policy"].spent.tokens == plain.spent.tokens
    assert picks["policy"].spent.reward_calls == plain.spent.reward_calls - n
    assert picks["policy"].spent.value_calls == plain.spent.value_calls
    assert picks["rank+policy"].spent == picks["rank"].spent
    torch.manual_seed(0)
    searched = compare.run_method(
        suite, "mcts", "2,9>11:", Budget(80), replace(settings, final="policy")
    )
    assert searched.pick == picks["policy"].pick and searched.spent == picks["policy"].spent
    assert policy_likelihood([]).shape == (0,) and policy_weakest_token([]).shape == (0,)


def test_the_blend_pick_reads_the_pool_and_books_what_rank_policy_books(tiny_prm_assets):
    from forethought.lm import compare
    from forethought.lm.artifacts.shipped import load_countdown
    from forethought.lm.blend import JudgeBlend
    from forethought.lm.search.common import policy_likelihood

    suite = load_countdown(tiny_prm_assets)
    settings = compare.SearchSettings(max_new_tokens=10, process="prm")
    torch.manual_seed(0)
    plain = compare.run_method(suite, "mcts", "2,9>11:", Budget(80), settings)
    with pytest.raises(ConfigError, match="train-blend"):
        compare.repick(suite, plain, ["blend"])
    ones, zeros = np.ones(4), np.zeros(4)
    suite.blend = JudgeBlend(("proxy", "value", "prm-last", "policy"), zeros, ones,
                             np.array([0.0, 0.0, 0.0, 1.0]))  # fmt: skip
    picks = compare.repick(suite, plain, ["blend", "rank+policy"])
    likely = policy_likelihood(plain.finalists)
    assert picks["blend"].pick == plain.finalists[int(np.argmax(likely))]
    assert picks["blend"].spent == picks["rank+policy"].spent


def test_train_blend_fits_checks_and_writes_a_loadable_blend(tiny_prm_assets, tmp_path):
    from forethought.cli import main
    from forethought.lm.artifacts.shipped import load_countdown

    for name in ("generator", "proxy", "value_model", "prm"):
        (tmp_path / name).symlink_to(tiny_prm_assets / name)
    args = ["--problems", "3", "--samples", "4", "--check-problems", "2", "--steps", "20"]
    assert main(["lm", "train-blend", "--out", str(tmp_path), *args]) == 0
    report = json.loads((tmp_path / "blend.json").read_text())
    assert report["blend"]["judges"] == ["proxy", "value", "prm-last", "policy"]
    assert {"blend", "proxy", "value", "prm-last", "policy", "rank mean"} < set(report["check"])
    for row in report["check"].values():
        assert 0.0 <= row["pick_solved"] <= report["check"]["any solved"]["pick_solved"]
    assert load_countdown(tmp_path).blend.judges == ("proxy", "value", "prm-last", "policy")
