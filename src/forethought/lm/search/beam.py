"""Step-wise beam search with a process scorer, and diverse verifier tree search (DVTS).

Diverse verifier tree search (`dvts`) is the same loop with several independent beams of
width one side by side.

A response is a sequence of steps ending in a delimiter token (for Countdown, ';' after each
equation). Each round, every live beam samples `expand` next steps; a process scorer (a value
predictor, or a reward model applied to partial text) scores the extended partials and the
best `width` become the new beams. Beams that emit end-of-sequence are complete and move to the
final pool; the final reward scores the pool and picks.

Budget: a round runs only if its worst case (live beams x expand x step tokens) fits in the
tokens left, and its process-scorer calls fit after reserving the final reward calls for the
pool, so the final scoring can always be paid for. When every beam has finished and a whole
answer's worth of tokens is left, a fresh beam search runs on the rest (`restarts`).
"""

from __future__ import annotations

import numpy as np

from forethought.errors import ConfigError
from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Candidate, Generator
from forethought.lm.rewards import Scorer
from forethought.lm.search.common import (
    SearchResult,
    check_step_search,
    pick_best,
    round_fits,
    within_reward_calls,
)
from forethought.lm.search.trace import NO_TRACE, NullTrace


def beam_search(
    generator: Generator,
    reward: Scorer,
    process: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    step_delimiters: set[int],
    width: int = 4,
    expand: int = 4,
    step_tokens: int = 12,
    restarts: bool = True,
    subtrees: int = 1,
    method: str = "beam",
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Beam search over steps (`step_delimiters`: token ids ending a step); `trace` records.
    With `subtrees` > 1, that many independent beam searches run side by side (see `dvts`)."""
    if width < 1 or expand < 1 or step_tokens < 1 or subtrees < 1:
        raise ConfigError(
            method,
            f"width, expand, step_tokens and subtrees must be >= 1, got {width}, {expand}, "
            f"{step_tokens}, {subtrees}",
        )
    step_tokens = check_step_search(
        budget, reward, process, max_new_tokens, step_delimiters, step_tokens
    )
    account = Account(budget)
    finalists, scores = [], []
    while True:
        trace.new_restart()
        pool = _one_beam(generator, reward, process, prompt, account, max_new_tokens,
                         step_delimiters, width, expand, step_tokens, trace, subtrees)  # fmt: skip
        pool = within_reward_calls(pool, account, reward)
        if pool:
            finalists += pool
            scores.append(reward(pool, account))
            trace.final(pool, scores[-1], reward)
        # Restart on leftover budget (beams that end early leave most of it) while a whole new
        # answer still fits, exactly as Best-of-N keeps sampling until its budget is used.
        if not (restarts and pool and account.tokens_left >= max_new_tokens):
            break
    if not finalists:
        raise ConfigError(
            "budget",
            f"{method}: no reward calls were left to score any candidate; raise "
            "budget.max_reward_calls",
        )
    return pick_best(method, finalists, np.concatenate(scores), account, trace)


def dvts(
    generator: Generator,
    reward: Scorer,
    process: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    step_delimiters: set[int],
    subtrees: int = 4,
    expand: int = 4,
    step_tokens: int = 12,
    restarts: bool = True,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """Diverse verifier tree search: `subtrees` independent greedy step searches (each keeps
    its one best of `expand` sampled next steps, by the process scorer), so one confident
    early mistake of the scorer cannot take over every branch as it can in a single beam."""
    return beam_search(
        generator,
        reward,
        process,
        prompt,
        budget,
        max_new_tokens=max_new_tokens,
        step_delimiters=step_delimiters,
        width=1,
        expand=expand,
        step_tokens=step_tokens,
        restarts=restarts,
        subtrees=subtrees,
        method="dvts",
        trace=trace,
    )


def _one_beam(
    generator,
    reward,
    process,
    prompt,
    account,
    max_new_tokens,
    step_delimiters,
    width,
    expand,
    step_tokens,
    trace,
    groups=1,
) -> list[Candidate]:
    """One beam search from the empty answer (`groups` independent ones side by side, each
    keeping its own `width` best); returns the pool for the final reward."""
    beams = generator.start(prompt, groups, max_new_tokens)
    group = list(range(groups))  # which subtree each beam belongs to
    done: list[Candidate] = []

    def affordable(rows: int) -> bool:
        return round_fits(account, process, reward, len(done), rows, step_tokens)

    step = 0
    while beams:
        fan = expand  # shrink the fan-out until this round's worst case fits what is left
        while fan >= 1 and not affordable(len(beams) * fan):
            fan -= 1
        if fan < 1:
            break
        children = [b for b in beams for _ in range(fan)]
        child_group = [g for g in group for _ in range(fan)]
        grown = generator.extend(
            children,
            step_tokens,
            account,
            stop_ids=step_delimiters,
            max_total_tokens=max_new_tokens,
        )
        children = trace.grow(children, grown, step)
        done.extend(c for c in children if c.finished)
        live = [i for i, c in enumerate(children) if not c.finished]
        if not live:
            return done
        live_group = np.array([child_group[i] for i in live])
        live = [children[i] for i in live]
        scores = process(live, account)  # R floats, one per extended partial
        trace.scored(live, scores, process, step)
        order = _top_per_group(scores, live_group, width)
        trace.pruned(live, order, step)
        beams, group = [live[i] for i in order], [int(live_group[i]) for i in order]
        step += 1
    # Beams cut off by the budget are scored as they are: partial answers still compete.
    return done + [b for b in beams if b.token_ids]


def _top_per_group(scores: np.ndarray, groups: np.ndarray, width: int) -> list[int]:
    """Indices of the `width` best scores within each group (ties: earliest), groups in order."""
    keep = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        best = np.argsort(-scores[members], kind="stable")[:width]
        keep.extend(int(i) for i in members[best])
    return keep
