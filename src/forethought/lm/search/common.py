"""What every search strategy shares: the result type, budget checks, the final pick."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import rankdata

from forethought.errors import ConfigError
from forethought.lm.budget import Account, Budget, Spend
from forethought.lm.generator import Candidate
from forethought.lm.rewards import Scorer
from forethought.lm.search.trace import NO_TRACE, NullTrace


@dataclass
class SearchResult:
    """The pick of one search plus an exact account of what the search spent."""

    method: str
    pick: Candidate
    score: float
    """The final reward score (the scorer the search optimises) of `pick`."""
    spent: Spend
    finalists: list[Candidate] = field(default_factory=list)
    """Every complete candidate the final reward scored, in scoring order."""
    finalist_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))


def require_one_candidate(budget: Budget, max_new_tokens: int, reward_calls_needed: int = 1):
    """Fail with a message naming the field when the budget cannot pay for a single answer."""
    if max_new_tokens < 1:
        raise ConfigError("max_new_tokens", f"must be at least 1, got {max_new_tokens}")
    if budget.max_tokens < max_new_tokens:
        raise ConfigError(
            "budget",
            f"a budget of {budget.max_tokens} tokens cannot pay for one candidate of up to "
            f"max_new_tokens={max_new_tokens} tokens; raise the budget to at least "
            f"{max_new_tokens} or lower max_new_tokens",
        )
    calls = budget.max_reward_calls
    if calls is not None and calls < reward_calls_needed:
        raise ConfigError(
            "reward_calls",
            f"{calls} reward calls cannot score one candidate (this method needs at least "
            f"{reward_calls_needed}); raise the reward-call budget",
        )


def check_step_search(
    budget: Budget,
    reward: Scorer,
    process: Scorer,
    max_new_tokens: int,
    step_delimiters: set[int],
    step_tokens: int,
) -> int:
    """The checks every step-level search (beam, DVTS, MCTS) makes before it spends anything;
    returns the step length, capped at the answer's."""
    if not step_delimiters:
        raise ConfigError("step_delimiters", "give at least one token id that ends a step")
    same_kind = process.kind == reward.kind  # then scoring partials and finals share one count
    require_one_candidate(budget, max_new_tokens, reward_calls_needed=2 if same_kind else 1)
    return min(step_tokens, max_new_tokens)


def within_reward_calls(pool: list[Candidate], account: Account, reward: Scorer) -> list:
    """The first candidates of `pool` the reward calls left can score (never binding when a
    search reserved them right; kept as a guard)."""
    calls_left = account.calls_left(reward.kind)
    return pool if calls_left is None else pool[:calls_left]


def pick_best(
    method: str,
    finalists: list[Candidate],
    scores: np.ndarray,
    account: Account,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Highest final score wins; ties go to the earliest candidate (deterministic)."""
    if not finalists:
        raise ConfigError("budget", f"{method}: the budget left no candidate to score")
    best = int(np.argmax(scores))
    trace.picked(finalists[best])
    return SearchResult(
        method=method,
        pick=finalists[best],
        score=float(scores[best]),
        spent=Spend(**account.spent.as_dict()),
        finalists=list(finalists),
        finalist_scores=np.asarray(scores, dtype=np.float64),
    )


def score_final(reward: Scorer, cands: list[Candidate], account: Account) -> np.ndarray:
    """Final reward on complete candidates (`R` floats), charged to the account."""
    return reward(cands, account)


def vote(result: SearchResult, answer: Callable[[str], object]) -> SearchResult:
    """Weighted majority vote over the final answers of `result`'s finalists: the answer whose
    finalists' scores sum highest wins, and its best-scored finalist is the pick (ties: the
    earliest). Scores are the weights, so they should be non-negative (PRM probabilities are);
    the vote re-reads what the search already scored and spends nothing."""
    if not result.finalists:
        return result
    keys = [answer(c.text) for c in result.finalists]
    weight: dict[object, float] = {}
    for k, s in zip(keys, result.finalist_scores, strict=True):
        weight[k] = weight.get(k, 0.0) + max(float(s), 0.0)
    winner = max(weight, key=weight.get)  # first key reaching the maximum
    members = [i for i, k in enumerate(keys) if k == winner]
    best = max(members, key=lambda i: result.finalist_scores[i])
    return replace(
        result,
        method=result.method,
        pick=result.finalists[best],
        score=float(result.finalist_scores[best]),
    )


def policy_likelihood(cands: Sequence[Candidate]) -> np.ndarray:
    """Each answer's mean log-probability per token under the generator that sampled it (its
    length-normalised likelihood), a judge that costs nothing: sampling recorded it."""
    return np.array([c.logprob / max(len(c.token_ids), 1) for c in cands], dtype=np.float64)


def policy_weakest_token(cands: Sequence[Candidate]) -> np.ndarray:
    """Each answer's least likely token: the lowest log-probability the generator gave any token
    it sampled. A mean dilutes one unlikely token (an operand the prompt lacks) over the whole
    answer; the minimum keeps it. Free as `policy_likelihood` is (0 for an empty answer)."""
    return np.array([min(c.token_logprobs, default=0.0) for c in cands], dtype=np.float64)


def rank_mean(judges: Sequence[np.ndarray]) -> np.ndarray:
    """One score per candidate: the mean over `judges` (each a score per candidate of the same
    pool) of the candidate's rank within the pool (1 = lowest, ties share the average rank).
    Ranks make judges on different scales (logits, probabilities) count equally; they are only
    comparable within one pool, so a pick by them must score the whole pool at once."""
    return np.mean([rankdata(np.asarray(s, dtype=np.float64)) for s in judges], axis=0)


def round_fits(
    account: Account, process: Scorer, reward: Scorer, pooled: int, rows: int, step_tokens: int
) -> bool:
    """Whether a round of `rows` step expansions fits what is left in the worst case: every row
    samples `step_tokens`, is scored by `process` and finishes, so the final pool (`pooled` so
    far) grows by `rows`, whose final `reward` calls are reserved now."""
    need = {"reward": 0, "value": 0}
    need[process.kind] += rows
    need[reward.kind] += pooled + rows
    calls_ok = all(account.calls_left(k) is None or need[k] <= account.calls_left(k) for k in need)
    return calls_ok and rows * step_tokens <= account.tokens_left
