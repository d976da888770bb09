"""Sample, then search: Best-of-N on a share of the budget, MCTS over steps on the rest, one pool.

A value-guided tree spends its tokens on the few branches its scorer ranks high, so its pool of
finished answers is narrow; independent samples are wide but unguided. The final judge picks
from both pools at once. Each part runs under its own slice of the budget, and the second slice
is what the first left, so the sum never exceeds the caller's budget.
"""

from __future__ import annotations

import math

import numpy as np

from forethought.errors import ConfigError
from forethought.lm.budget import Account, Budget, Spend
from forethought.lm.generator import Generator
from forethought.lm.rewards import Scorer
from forethought.lm.search.bon import best_of_n
from forethought.lm.search.common import SearchResult, pick_best
from forethought.lm.search.step_tree import mcts
from forethought.lm.search.trace import NO_TRACE, NullTrace

CANNOT_PAY = ("budget", "reward_calls")
"""The fields of the errors a part raises when its slice cannot pay for one answer."""


def sample_then_search(
    generator: Generator,
    reward: Scorer,
    process: Scorer,
    prompt: str,
    budget: Budget,
    *,
    share: float = 0.5,
    max_new_tokens: int,
    step_delimiters: set[int],
    trace: NullTrace = NO_TRACE,
    **tree: object,
) -> SearchResult:
    """Best-of-N on `share` of every capped quantity of `budget`, then `mcts` (with `tree`'s
    keyword settings) on what is left; the final `reward` scores of both parts pick the answer.
    A part whose slice cannot pay for one answer is skipped; with `share` 0 this is `mcts`, with
    1 `best_of_n`, but for the method's name."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError("mix_share", f"must be between 0 and 1, got {share}")
    parts: list[SearchResult] = []
    unpaid: list[ConfigError] = []

    def attempt(part_budget: Budget | None, run) -> None:
        if part_budget is None:
            return
        try:
            parts.append(run(part_budget))
        except ConfigError as e:
            if e.field not in CANNOT_PAY:  # a bad setting, not a small slice: say so
                raise
            unpaid.append(e)

    attempt(_slice(budget, share), lambda b: best_of_n(
        generator, reward, prompt, b, max_new_tokens=max_new_tokens, trace=trace))  # fmt: skip
    attempt(_remainder(budget, parts[0].spent if parts else Spend()), lambda b: mcts(
        generator, reward, process, prompt, b, max_new_tokens=max_new_tokens,
        step_delimiters=step_delimiters, trace=trace, **tree))  # fmt: skip
    if not parts:
        raise unpaid[-1]
    account = Account(budget)
    for part in parts:
        for kind, n in part.spent.as_dict().items():
            setattr(account.spent, kind, getattr(account.spent, kind) + n)
    finalists = [c for part in parts for c in part.finalists]
    scores = np.concatenate([part.finalist_scores for part in parts])
    result = pick_best("mix", finalists, scores, account)
    for part in parts:  # each part marked its own pick in the trace; one pick stands
        trace.repicked(part.pick, result.pick)
    return result


def _slice(budget: Budget, share: float) -> Budget | None:
    """`share` of every capped quantity of `budget` (None when the tokens round to zero)."""
    tokens = math.floor(budget.max_tokens * share)
    if tokens < 1:
        return None

    def cap(x: int | None) -> int | None:
        return None if x is None else math.floor(x * share)

    return Budget(tokens, cap(budget.max_reward_calls), cap(budget.max_value_calls))


def _remainder(budget: Budget, spent: Spend) -> Budget | None:
    """What `budget` has left after `spent` (None when no token is left)."""
    if spent.tokens >= budget.max_tokens:
        return None

    def left(x: int | None, used: int) -> int | None:
        return None if x is None else x - used

    return Budget(
        budget.max_tokens - spent.tokens,
        left(budget.max_reward_calls, spent.reward_calls),
        left(budget.max_value_calls, spent.value_calls),
    )
