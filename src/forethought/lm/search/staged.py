"""Staged pruning: start many partial branches, score the partials, keep the best, continue.

Two strategies are this one loop with different evaluators and schedules:

* value-guided look-ahead (`lookahead`, planned generation): a *value predictor*
  scores short partial branches once, the top `keep` continue to the end, the reward picks;
* multi-round early pruning (`prune`, speculative rejection): the *reward model itself* scores
  partial generations every `chunk` tokens and a fixed fraction is rejected each round.

The schedule is planned before any token is sampled: for a start width `n`, `survivors(n)` gives
the rows alive in each segment, and the worst case (every row runs its full segment) must fit
the budget. The widest affordable `n` is used, so the plan can never overspend; leftover
budget (answers ending early) is spent by running the schedule again.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from forethought.errors import ConfigError
from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Generator
from forethought.lm.rewards import Scorer
from forethought.lm.search.common import SearchResult, pick_best, require_one_candidate
from forethought.lm.search.trace import NO_TRACE, NullTrace


@dataclass(frozen=True)
class Schedule:
    """Checkpoints (response lengths at which partials are scored) and how many survive each."""

    checkpoints: tuple[int, ...]
    keep: float | int
    """A fraction in (0, 1) of rows kept at each checkpoint, or an absolute count >= 1."""

    def survivors(self, n: int) -> list[int]:
        """Rows alive in each of the len(checkpoints)+1 segments, starting from `n`."""
        alive = [n]
        for _ in self.checkpoints:
            if isinstance(self.keep, float):
                alive.append(max(1, math.ceil(alive[-1] * self.keep)))
            else:
                alive.append(min(alive[-1], self.keep))
        return alive

    def cost(self, n: int, max_new_tokens: int) -> tuple[int, int, int]:
        """Worst-case (tokens, partial-scorer calls, final reward calls) for start width `n`."""
        bounds = [0, *self.checkpoints, max_new_tokens]
        alive = self.survivors(n)
        tokens = sum(
            a * (hi - lo) for a, (lo, hi) in zip(alive, itertools.pairwise(bounds), strict=True)
        )
        return tokens, sum(alive[:-1]), alive[-1]


def _fits(account: Account, partial: Scorer, final: Scorer, cost: tuple[int, int, int]) -> bool:
    tokens, partial_calls, final_calls = cost
    need = {"reward": 0, "value": 0}
    need[partial.kind] += partial_calls
    need[final.kind] += final_calls
    return tokens <= account.tokens_left and all(
        account.calls_left(kind) is None or need[kind] <= account.calls_left(kind) for kind in need
    )


def staged_search(
    method: str,
    generator: Generator,
    reward: Scorer,
    partial: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    schedule: Schedule,
    max_branches: int = 256,
    restarts: bool = True,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Run `schedule` at the widest start width the budget affords (at most `max_branches`).

    The width is planned for the worst case (every branch runs to max_new_tokens), and answers
    that end early leave budget unspent; with `restarts`, the schedule runs again on what is
    left, as long as one more branch fits, and the final reward picks among all survivors.
    This is what makes "equal budget" mean equal spending against Best-of-N, which also keeps
    sampling until its budget is used. `trace` records the tree (rounds are segments).
    """
    if any(not 0 < c < max_new_tokens for c in schedule.checkpoints) or list(
        schedule.checkpoints
    ) != sorted(set(schedule.checkpoints)):
        raise ConfigError(
            "checkpoints",
            f"must be increasing and inside (0, max_new_tokens={max_new_tokens}), "
            f"got {schedule.checkpoints}",
        )
    require_one_candidate(budget, max_new_tokens)
    account = Account(budget)
    finalists, scores = [], []
    while True:
        n = _widest(account, partial, reward, schedule, max_new_tokens, max_branches)
        if n == 0:
            break
        trace.new_restart()
        survivors = _run_schedule(
            generator, partial, prompt, account, schedule, n, max_new_tokens, trace
        )
        finalists += survivors
        scores.append(reward(survivors, account))
        trace.final(survivors, scores[-1], reward)
        if not restarts:
            break
    if not finalists:
        tokens, p_calls, f_calls = schedule.cost(1, max_new_tokens)
        raise ConfigError(
            "budget",
            f"{method} needs at least {tokens} tokens, {p_calls} {partial.kind} calls and "
            f"{f_calls} reward calls for a single branch; raise the budget or use fewer checkpoints",
        )
    return pick_best(method, finalists, np.concatenate(scores), account, trace)


def _widest(account, partial, reward, schedule, max_new_tokens, max_branches) -> int:
    """Largest start width whose worst case still fits what is left (0 if none does)."""
    n = 0
    while n < max_branches and _fits(
        account, partial, reward, schedule.cost(n + 1, max_new_tokens)
    ):
        n += 1
    return n


def _rankable(schedule, partial, reward, budget, max_new_tokens, max_branches) -> Schedule:
    """`schedule`, or the longest shorter checkpoint at which the budget's first round starts
    more branches than continue past it (without that, the value predictor ranks nothing)."""

    def ranks(sched: Schedule) -> bool:
        n = _widest(Account(budget), partial, reward, sched, max_new_tokens, max_branches)
        return n >= 2 and sched.survivors(n)[1] < n

    if ranks(schedule):
        return schedule
    for prefix in range(schedule.checkpoints[0] - 1, 0, -1):
        shorter = Schedule((prefix,), schedule.keep)
        if ranks(shorter):
            return shorter
    return schedule


def _run_schedule(generator, partial, prompt, account, schedule, n, max_new_tokens, trace):
    """One pass of the schedule from `n` fresh branches; returns the complete survivors."""
    alive = schedule.survivors(n)
    bounds = [0, *schedule.checkpoints, max_new_tokens]
    branches = generator.start(prompt, n, max_new_tokens)
    for seg, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        # Grow every branch to length `hi` (finished ones stay as they are).
        grown = generator.extend(branches, hi - lo, account, max_total_tokens=hi)
        branches = trace.grow(branches, grown, seg)
        if seg == len(bounds) - 2:
            break
        values = partial(branches, account)  # R floats, one per partial branch
        trace.scored(branches, values, partial, seg)
        order = np.argsort(-values, kind="stable")[: alive[seg + 1]]
        trace.pruned(branches, order, seg)
        branches = [branches[i] for i in order]
    # Lengths are capped at max_new_tokens, so every survivor is now a complete response.
    return branches


def lookahead(
    generator: Generator,
    reward: Scorer,
    value: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    prefix_tokens: int = 8,
    keep: int | float = 4,
    max_branches: int = 128,
    restarts: bool = True,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Value-guided look-ahead: many `prefix_tokens`-long branches, the top `keep` continue.

    `keep` is a count (int) or a fraction of the branches (float in (0, 1)). When the budget
    affords a single branch at `prefix_tokens`, nothing would be ranked, so the prefix is
    shortened to the longest one at which two branches fit.
    """
    keep = float(keep) if isinstance(keep, float) else int(keep)
    schedule = Schedule((min(prefix_tokens, max_new_tokens - 1),), keep)
    if max_new_tokens < 2:  # no room for a partial: plain sampling plus the final reward
        schedule = Schedule((), keep)
    else:
        schedule = _rankable(schedule, value, reward, budget, max_new_tokens, max_branches)
    return staged_search(
        "lookahead",
        generator,
        reward,
        value,
        prompt,
        budget,
        max_new_tokens=max_new_tokens,
        schedule=schedule,
        max_branches=max_branches,
        restarts=restarts,
        trace=trace,
    )


def prune(
    generator: Generator,
    reward: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    chunk: int = 8,
    keep_fraction: float = 0.5,
    partial: Scorer | None = None,
    max_branches: int = 128,
    restarts: bool = True,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Speculative rejection: every `chunk` tokens, score partials and keep `keep_fraction`.

    The partial scorer defaults to the reward model itself (as in speculative rejection); pass a
    value predictor as `partial` to prune with it instead.
    """
    if not 0.0 < keep_fraction < 1.0:
        raise ConfigError("keep_fraction", f"must be in (0, 1), got {keep_fraction}")
    if chunk < 1:
        raise ConfigError("chunk", f"must be at least 1 token, got {chunk}")
    checkpoints = tuple(range(chunk, max_new_tokens, chunk))
    return staged_search(
        "prune",
        generator,
        reward,
        partial or reward,
        prompt,
        budget,
        max_new_tokens=max_new_tokens,
        schedule=Schedule(checkpoints, float(keep_fraction)),
        max_branches=max_branches,
        restarts=restarts,
        trace=trace,
    )
