"""Head-to-head comparison of search strategies at equal budget on held-out prompts.

Each (prompt, budget) pair runs every method from the same torch seed, so differences come from
the methods, not the luck of a seed. The pick is judged twice: by the proxy reward the search
optimised and by the gold verifier it never saw; the gap between them measures reward hacking.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.lm.artifacts.shipped import CountdownSuite
from forethought.lm.budget import Budget
from forethought.lm.rewards import RuleGated, Scorer
from forethought.lm.search import (
    NO_TRACE,
    NullTrace,
    SearchResult,
    beam_search,
    best_of_n,
    lookahead,
    prune,
)
from forethought.lm.tasks import countdown

METHODS = ("bon", "lookahead", "prune", "beam")
PARTIAL_SCORERS = ("value", "proxy", "legal+value", "legal+proxy")
"""What may score partial answers: the value predictor, the proxy reward model on the partial
text, or either behind Countdown's step-legality check (`countdown.steps_legal`, which reads the
prompt's numbers and the completed steps only; never the target or a solution)."""


def partial_scorer(suite: CountdownSuite, name: str, field: str) -> Scorer:
    """The scorer called `name` (one of PARTIAL_SCORERS) built from `suite`."""
    if name not in PARTIAL_SCORERS:
        raise ConfigError(field, f"must be one of {', '.join(PARTIAL_SCORERS)}, got {name!r}")
    inner = suite.value if name.endswith("value") else suite.proxy
    return RuleGated(countdown.steps_legal, inner) if name.startswith("legal+") else inner


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of every strategy; defaults suit Countdown answers (<= 19 tokens, 6 per step)."""

    max_new_tokens: int = 24
    """Cap on a response's length in tokens."""
    final: str = "proxy"
    """Every method's final pick: 'proxy' (the reward model) or 'legal+proxy' (the reward model behind the step-legality check)."""
    prefix_tokens: int = 12
    """look-ahead: length of the partial branches that are ranked (about two Countdown steps, so the legality check has two completed steps to judge)."""
    lookahead_scorer: str = "legal+value"
    """look-ahead: what ranks the partial branches (one of PARTIAL_SCORERS)."""
    keep: int | float = 0.25
    """look-ahead: branches continued to the end, a count or a fraction of the branches."""
    chunk: int = 6
    """prune: tokens between two rounds of rejection."""
    keep_fraction: float = 0.5
    """prune: fraction of partial generations kept each round."""
    prune_scorer: str = "legal+value"
    """prune: partial scorer (one of PARTIAL_SCORERS); 'proxy' is the reward model on partials, as in speculative rejection."""
    width: int = 4
    """beam: beams kept after each step."""
    expand: int = 4
    """beam: next steps sampled per beam."""
    step_tokens: int = 8
    """beam: most tokens one step may take."""
    process: str = "legal+value"
    """beam: process scorer (one of PARTIAL_SCORERS).  The partial-scorer defaults were chosen on development prompts (problem seed 15000, never the benchmark's). With the ridge predictors, the learned scorers alone tied Best-of-N and the legality check carried the wins; the fine-tuned value model ('model', the default value predictor) ranks partials well enough to win on its own at some budgets, and behind the check it won at every budget tried (60 prompts, 64-256 tokens). benchmarks/lm_search.py runs both, with and without the check."""


def run_method(
    suite: CountdownSuite,
    method: str,
    prompt: str,
    budget: Budget,
    s: SearchSettings,
    *,
    n: int | None = None,
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """One search with `method` on `prompt`; the proxy is the final reward for every method.
    A `Trace` passed as `trace` records the search tree (the search itself is unchanged)."""
    gen = suite.generator
    if s.final not in ("proxy", "legal+proxy"):
        raise ConfigError("final", f"must be 'proxy' or 'legal+proxy', got {s.final!r}")
    proxy = partial_scorer(suite, s.final, "final")
    if method == "bon":
        return best_of_n(
            gen, proxy, prompt, budget, max_new_tokens=s.max_new_tokens, n=n, trace=trace
        )
    if method == "lookahead":
        return lookahead(
            gen,
            proxy,
            partial_scorer(suite, s.lookahead_scorer, "lookahead_scorer"),
            prompt,
            budget,
            max_new_tokens=s.max_new_tokens,
            prefix_tokens=s.prefix_tokens,
            keep=s.keep,
            trace=trace,
        )
    if method == "prune":
        return prune(
            gen,
            proxy,
            prompt,
            budget,
            max_new_tokens=s.max_new_tokens,
            chunk=s.chunk,
            keep_fraction=s.keep_fraction,
            partial=partial_scorer(suite, s.prune_scorer, "prune_scorer"),
            trace=trace,
        )
    if method == "beam":
        process = partial_scorer(suite, s.process, "process")
        return beam_search(
            gen,
            proxy,
            process,
            prompt,
            budget,
            max_new_tokens=s.max_new_tokens,
            step_delimiters=suite.delimiters,
            width=s.width,
            expand=s.expand,
            step_tokens=s.step_tokens,
            trace=trace,
        )
    raise ConfigError("methods", f"unknown method {method!r}; choose from {', '.join(METHODS)}")


@dataclass
class Record:
    """One search on one prompt: what it picked and what it spent."""

    method: str
    budget: int
    prompt_index: int
    prompt: str
    response: str
    gold: float
    proxy: float
    tokens: int
    reward_calls: int
    value_calls: int


def evaluate(
    suite: CountdownSuite,
    methods: Sequence[str],
    prompts: Sequence[str],
    budgets: Sequence[int],
    settings: SearchSettings,
    *,
    seed: int = 0,
    reward_calls: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[Record]:
    """Run every method on every prompt at every token budget."""
    for m in methods:
        if m not in METHODS:
            raise ConfigError("methods", f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    records = []
    for b in budgets:
        budget = Budget(max_tokens=b, max_reward_calls=reward_calls)
        for i, prompt in enumerate(prompts):
            for m in methods:
                torch.manual_seed(seed * 1_000_003 + b * 7919 + i)  # same seed for every method
                res = run_method(suite, m, prompt, budget, settings)
                gold = float(suite.gold([res.pick])[0])  # unmetered: judging, not searching
                proxy = res.score  # with a rule-gated final pick, report the proxy's own score
                if settings.final != "proxy":
                    proxy = float(suite.proxy([res.pick])[0])
                records.append(
                    Record(
                        m,
                        b,
                        i,
                        prompt,
                        res.pick.text,
                        gold,
                        proxy,
                        res.spent.tokens,
                        res.spent.reward_calls,
                        res.spent.value_calls,
                    )
                )
                if on_done:
                    on_done()
    return records


def summarize(records: Sequence[Record], baseline: str = "bon") -> list[dict]:
    """Per (budget, method): means, and wins/ties/losses on gold against `baseline`.

    win_rate counts a tie as half a win; decisive_win_rate ignores ties.
    """
    by = defaultdict(dict)
    for r in records:
        by[(r.budget, r.method)][r.prompt_index] = r
    rows = []
    for (b, m), recs in sorted(by.items()):
        base = by.get((b, baseline), {})
        pairs = [(recs[i].gold, base[i].gold) for i in recs if i in base]
        wins = sum(g > h for g, h in pairs)
        ties = sum(g == h for g, h in pairs)
        losses = len(pairs) - wins - ties
        rs = list(recs.values())
        rows.append(
            {
                "budget": b,
                "method": m,
                "prompts": len(rs),
                "mean_gold": float(np.mean([r.gold for r in rs])),
                "solved": float(np.mean([r.gold == 1.0 for r in rs])),
                "mean_proxy": float(np.mean([r.proxy for r in rs])),
                "wins": wins,
                "ties": ties,
                "losses": losses,
                "win_rate": (wins + 0.5 * ties) / len(pairs) if pairs else float("nan"),
                "decisive_win_rate": wins / (wins + losses) if wins + losses else float("nan"),
                "mean_tokens": float(np.mean([r.tokens for r in rs])),
                "mean_reward_calls": float(np.mean([r.reward_calls for r in rs])),
                "mean_value_calls": float(np.mean([r.value_calls for r in rs])),
            }
        )
    return rows


def bon_sweep(
    suite: CountdownSuite,
    prompts: Sequence[str],
    ns: Sequence[int],
    settings: SearchSettings,
    *,
    seed: int = 0,
) -> list[dict]:
    """Best-of-N for each N (budget never binding): proxy vs gold of the pick as N grows."""
    rows = []
    for n in ns:
        budget = Budget(max_tokens=n * settings.max_new_tokens)
        gold, proxy, tokens = [], [], []
        for i, prompt in enumerate(prompts):
            torch.manual_seed(seed * 1_000_003 + n * 31 + i)
            res = run_method(suite, "bon", prompt, budget, settings, n=n)
            gold.append(float(suite.gold([res.pick])[0]))
            proxy.append(res.score)
            tokens.append(res.spent.tokens)
        rows.append(
            {
                "n": n,
                "mean_gold": float(np.mean(gold)),
                "mean_proxy": float(np.mean(proxy)),
                "proxy_minus_gold": float(np.mean(proxy) - np.mean(gold)),
                "solved": float(np.mean([g == 1.0 for g in gold])),
                "mean_tokens": float(np.mean(tokens)),
            }
        )
    return rows


def plot_reward_vs_budget(rows: Sequence[dict], path: str) -> str:
    """Mean gold (solid) and proxy (dashed) reward against mean tokens spent, per method."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["budget"])
        line = ax.plot(
            [r["mean_tokens"] for r in rs], [r["mean_gold"] for r in rs], "o-", label=f"{m} gold"
        )
        ax.plot(
            [r["mean_tokens"] for r in rs],
            [r["mean_proxy"] for r in rs],
            "x--",
            color=line[0].get_color(),
            alpha=0.6,
            label=f"{m} proxy",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens generated per prompt (mean)")
    ax.set_ylabel("reward of the pick (mean)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def records_as_dicts(records: Sequence[Record]) -> list[dict]:
    return [asdict(r) for r in records]
