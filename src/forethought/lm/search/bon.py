"""Best-of-N: sample complete responses, score each with the reward, keep the best.

The baseline every other strategy is compared against. Given only a budget, it keeps sampling
batches while the worst case of another batch still fits, so early end-of-sequence tokens are
spent on more candidates rather than left unused; `n` caps the count (Best-of-16 is `n=16`).
"""

from __future__ import annotations

import numpy as np

from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Candidate, Generator
from forethought.lm.rewards import Scorer
from forethought.lm.search.common import SearchResult, pick_best, require_one_candidate
from forethought.lm.search.trace import NO_TRACE, NullTrace


def best_of_n(
    generator: Generator,
    reward: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    n: int | None = None,
    batch: int = 32,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Best of as many samples as the budget (and `n`, if given) allows; `trace` records the
    samples as one flat tree (every sample a child of the prompt)."""
    require_one_candidate(
        budget, max_new_tokens, reward_calls_needed=1 if reward.kind == "reward" else 0
    )
    account = Account(budget)
    trace.new_restart()
    finalists: list[Candidate] = []
    scores: list[np.ndarray] = []
    while True:
        k = min(batch, account.tokens_left // max_new_tokens)
        k = account.affordable_calls(reward.kind, k)
        if n is not None:
            k = min(k, n - len(finalists))
        if k < 1:
            break
        new = trace.grow(None, generator.generate(prompt, k, max_new_tokens, account), 0)
        scores.append(reward(new, account))
        trace.final(new, scores[-1], reward)
        finalists.extend(new)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    return pick_best("bon", finalists, scores, account, trace)
