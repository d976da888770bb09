"""Every search strategy runs end to end through tiny random HF models loaded from disk."""

from __future__ import annotations

import pytest
import torch

from forethought.errors import ConfigError
from forethought.lm import Budget, FunctionReward, beam_search, best_of_n, lookahead, prune

PROMPT = "3,4,5>17:"
MAX_NEW = 12


def _value():
    # A cheap prefix scorer: prefers prefixes with more '+' signs; counted as value calls.
    return FunctionReward(lambda p, r: r.count("+") - 0.01 * len(r), kind="value", name="toy value")


def _run(method, gen, rm, budget):
    delims = {gen.tokenizer.convert_tokens_to_ids(";")}
    if method == "bon":
        return best_of_n(gen, rm, PROMPT, budget, max_new_tokens=MAX_NEW)
    if method == "lookahead":
        return lookahead(gen, rm, _value(), PROMPT, budget, max_new_tokens=MAX_NEW, prefix_tokens=4)
    if method == "prune":
        return prune(gen, rm, PROMPT, budget, max_new_tokens=MAX_NEW, chunk=4)
    return beam_search(
        gen,
        rm,
        _value(),
        PROMPT,
        budget,
        max_new_tokens=MAX_NEW,
        step_delimiters=delims,
        step_tokens=4,
    )


@pytest.mark.parametrize("method", ["bon", "lookahead", "prune", "beam"])
def test_strategy_runs_and_accounts_exactly(tiny, method):
    gen, rm = tiny
    torch.manual_seed(1)
    budget = Budget(max_tokens=200, max_reward_calls=40)
    res = _run(method, gen, rm, budget)
    assert res.method == method
    assert 0 < res.spent.tokens <= 200
    assert 0 < res.spent.reward_calls <= 40
    # The pick is one of the scored finalists and carries the best final score.
    assert res.pick in res.finalists
    assert res.score == pytest.approx(float(res.finalist_scores.max()))
    # Token count is exact: it equals the tokens held by every candidate ever sampled, which for
    # Best-of-N is just the finalists.
    if method == "bon":
        assert res.spent.tokens == sum(len(c.token_ids) for c in res.finalists)
        assert res.spent.reward_calls == len(res.finalists)
    assert all(len(c.token_ids) <= MAX_NEW for c in res.finalists)


def test_rewards_rescore_identically(tiny):
    gen, rm = tiny
    torch.manual_seed(2)
    res = best_of_n(gen, rm, PROMPT, Budget(max_tokens=60), max_new_tokens=MAX_NEW)
    again = rm(res.finalists)  # batched scoring is order- and padding-independent
    assert again == pytest.approx(res.finalist_scores, abs=1e-4)


def test_same_seed_same_pick(tiny):
    gen, rm = tiny
    picks = []
    for _ in range(2):
        torch.manual_seed(3)
        picks.append(prune(gen, rm, PROMPT, Budget(150), max_new_tokens=MAX_NEW, chunk=4).pick)
    assert picks[0].token_ids == picks[1].token_ids


def test_bon_respects_n(tiny):
    gen, rm = tiny
    res = best_of_n(gen, rm, PROMPT, Budget(10_000), max_new_tokens=MAX_NEW, n=5)
    assert len(res.finalists) == 5


@pytest.mark.parametrize("method", ["bon", "lookahead", "prune", "beam"])
def test_budget_smaller_than_one_candidate_is_a_clear_error(tiny, method):
    gen, rm = tiny
    with pytest.raises(ConfigError, match=r"--budget: .*raise the budget"):
        _run(method, gen, rm, Budget(max_tokens=MAX_NEW - 1))


def test_zero_reward_calls_is_a_clear_error(tiny):
    gen, rm = tiny
    with pytest.raises(ConfigError, match="--reward-calls"):
        best_of_n(gen, rm, PROMPT, Budget(100, max_reward_calls=0), max_new_tokens=MAX_NEW)


def test_shared_prompt_cache_gives_the_same_samples(tiny_dirs):
    from forethought.lm import Account, Generator

    gen_dir, _ = tiny_dirs
    outs = []
    for share in (True, False):
        gen = Generator.from_pretrained(gen_dir, share_prompt_cache=share)
        torch.manual_seed(5)
        outs.append([c.token_ids for c in gen.generate(PROMPT, 6, MAX_NEW, Account(Budget(100)))])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("method", ["bon", "lookahead", "prune", "beam"])
def test_leftover_budget_is_spent_with_restarts(tiny, method):
    """Equal budget means equal spending: every method stops only when less than one whole
    answer's worth of tokens is left (reward and value calls unlimited here)."""
    gen, rm = tiny
    torch.manual_seed(4)
    res = _run(method, gen, rm, Budget(max_tokens=300))
    assert 300 - MAX_NEW < res.spent.tokens <= 300


@pytest.mark.parametrize("method", ["lookahead", "prune", "beam"])
def test_partial_branches_are_continued_past_each_checkpoint(tiny, method):
    """A branch cut at a checkpoint is still unfinished: the final answers are complete, i.e.
    they end in EOS or reach max_new_tokens, never stop at the checkpoint length."""
    gen, rm = tiny
    torch.manual_seed(6)
    res = _run(method, gen, rm, Budget(max_tokens=400))
    for c in res.finalists:
        assert c.finished
        assert c.token_ids[-1] == gen.eos_id or len(c.token_ids) == MAX_NEW
    assert max(len(c.token_ids) for c in res.finalists) > 4  # 4 = the first checkpoint


def test_extend_growth_limit_does_not_finish_a_row(tiny):
    from forethought.lm import Account

    gen, _ = tiny
    torch.manual_seed(7)
    cands = gen.extend(gen.start(PROMPT, 8, MAX_NEW), 5, Account(Budget(100)), max_total_tokens=3)
    for c in cands:
        assert len(c.token_ids) <= 3
        assert c.finished == (bool(c.token_ids) and c.token_ids[-1] == gen.eos_id)


@pytest.mark.parametrize("budget,prefix", [(32, 8), (48, 12)])
def test_lookahead_shortens_its_prefix_when_only_one_branch_would_fit(tiny, budget, prefix):
    """With 32 tokens, 24-token answers and 12-token prefixes, one branch fits (12 + 12) and
    nothing would be ranked; look-ahead ranks two 8-token prefixes instead (2 x 8 + 16). With
    48 tokens three 12-token prefixes fit, and the asked-for length is kept."""
    gen, rm = tiny
    seen = []  # token lengths of the partials the value predictor ranked

    def value(prompt, response):
        return 0.0

    class Recording(FunctionReward):
        def _score(self, cands):
            seen.extend(len(c.token_ids) for c in cands)
            return super()._score(cands)

    torch.manual_seed(8)
    res = lookahead(
        gen,
        rm,
        Recording(value, kind="value"),
        PROMPT,
        Budget(max_tokens=budget),
        max_new_tokens=24,
        prefix_tokens=12,
        keep=0.25,
    )
    assert res.spent.value_calls >= 2 and res.spent.tokens <= budget
    assert max(seen) == prefix
