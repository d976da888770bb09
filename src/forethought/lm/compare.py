"""Head-to-head comparison of search strategies at equal budget on held-out prompts.

Each (prompt, budget) pair runs every method from the same torch seed, so differences come from
the methods, not the luck of a seed. The pick is judged twice: by the proxy reward the search
optimised and by the gold verifier it never saw; the gap between them measures reward hacking.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Literal, get_args

import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.lm.artifacts.shipped import CountdownSuite
from forethought.lm.blend import JudgeBlend
from forethought.lm.budget import Account, Budget, Spend
from forethought.lm.prm import AggregatedPRM
from forethought.lm.rewards import RuleGated, Scorer
from forethought.lm.search import (
    NO_TRACE,
    NullTrace,
    SearchResult,
    beam_search,
    best_of_n,
    dvts,
    lookahead,
    mcts,
    prune,
    sample_then_search,
    vote,
)
from forethought.lm.search.common import pick_best, policy_likelihood, rank_mean
from forethought.lm.tasks import countdown

METHODS = ("bon", "lookahead", "prune", "beam", "dvts", "mcts", "mix")
PARTIAL_SCORERS = ("value", "proxy", "prm", "legal+value", "legal+proxy")
"""What may score partial answers: the value predictor, the proxy reward model on the partial
text, the process reward model, or the first two behind Countdown's step-legality check
(`steps_legal`, which reads the prompt's numbers and the completed steps only; never the target
or a solution)."""
FinalPick = Literal[
    "proxy",
    "legal+proxy",
    "value",
    "prm-min",
    "prm-last",
    "prm-prod",
    "vote",
    "rank",
    "policy",
    "rank+policy",
    "blend",
]
FINALS: tuple[str, ...] = get_args(FinalPick)
"""What picks among a search's finished answers: the proxy reward model (alone or behind the
legality check), the value model on the whole answer, the PRM's step scores folded by min,
last or product, a weighted majority vote over final answers (weights: PRM last-step), the
mean within-pool rank given by the learned judges in RANK_JUDGES, the generator's own mean
log-probability per token of the answer ('policy': recorded while sampling, so it costs no
call), the mean rank of RANK_JUDGES and the policy's likelihood ('rank+policy'), or a learned
weighting of those four judges' scores ('blend', fitted by `lm train-blend`)."""
RANK_JUDGES = ("proxy", "value", "prm-last")
"""The judges whose ranks the 'rank' pick averages: no hand-written rule among them."""
POOL_PICKS = ("vote", "rank", "policy", "rank+policy", "blend")
"""Finals that read a search's whole pool after it: the search itself picks by the proxy (by
PRM-last for 'vote')."""


def _require_prm(suite: CountdownSuite, field: str) -> Scorer:
    if suite.prm is None:
        raise ConfigError(
            field,
            "needs a process reward model; train one with `forethought lm train-prm --out DIR` "
            "and pass --assets DIR",
        )
    return suite.prm


def _require_blend(suite: CountdownSuite) -> JudgeBlend:
    if suite.blend is None:
        raise ConfigError(
            "final",
            "'blend' needs fitted judge weights; run `forethought lm train-blend --out DIR` "
            "and pass --assets DIR",
        )
    return suite.blend


def partial_scorer(suite: CountdownSuite, name: str, field: str) -> Scorer:
    """The scorer called `name` (one of PARTIAL_SCORERS) built from `suite`."""
    if name not in PARTIAL_SCORERS:
        raise ConfigError(field, f"must be one of {', '.join(PARTIAL_SCORERS)}, got {name!r}")
    if name == "prm":
        return _require_prm(suite, field)
    inner = suite.value if name.endswith("value") else suite.proxy
    return RuleGated(suite.task.steps_legal, inner) if name.startswith("legal+") else inner


def final_scorer(suite: CountdownSuite, name: str) -> Scorer:
    """The scorer behind the final pick `name` (one of FINALS; 'vote' weighs by PRM-last;
    'rank' searches by the proxy, its pool is ranked afterwards)."""
    if name not in FINALS:
        raise ConfigError("final", f"must be one of {', '.join(FINALS)}, got {name!r}")
    if name == "blend":
        _require_blend(suite)
    if name in POOL_PICKS and name != "vote":
        return suite.proxy
    if name in ("proxy", "legal+proxy"):
        return partial_scorer(suite, name, "final")
    if name == "value":
        return suite.value
    how = "last" if name == "vote" else name.removeprefix("prm-")
    return AggregatedPRM(_require_prm(suite, "final"), how)


def repick(suite: CountdownSuite, result: SearchResult, finals: Sequence[str]) -> dict:
    """`result`'s finished answers picked again by each final pick in `finals`: for each, the
    search's own spending plus that judge's calls, minus the proxy's final calls it replaces
    ('rank' keeps them: the proxy is one of its judges). Each judge reads the pool once and its
    calls are booked to every pick that uses it."""
    n = len(result.finalists)
    base = Spend(**result.spent.as_dict())
    base.reward_calls -= n  # the proxy's final scoring
    seen: dict[str, np.ndarray | list] = {"proxy": result.finalist_scores}

    def judge(name: str, account: Account) -> np.ndarray:
        if name == "policy":  # the generator scored every token as it sampled it: no call
            return policy_likelihood(result.finalists)
        scorer = final_scorer(suite, name)
        account.charge_calls(scorer.kind, n)
        if isinstance(scorer, AggregatedPRM):
            if "steps" not in seen:
                seen["steps"] = scorer.prm.step_scores(result.finalists)
            return scorer.fold(seen["steps"])
        if name not in seen:
            seen[name] = scorer(result.finalists)  # booked above, once per pick
        return seen[name]

    out = {}
    for final in finals:
        if final == "proxy":
            out[final] = result
            continue
        account = Account(Budget(max_tokens=max(base.tokens, 1)))
        account.spent = Spend(**base.as_dict())
        if final in ("rank", "rank+policy"):
            judges = RANK_JUDGES + (("policy",) if final == "rank+policy" else ())
            scores = rank_mean([judge(name, account) for name in judges])
        elif final == "blend":
            blend = _require_blend(suite)
            scores = blend.score(np.stack([judge(name, account) for name in blend.judges], -1))
        else:
            scores = judge(final, account)
        picked = pick_best(result.method, result.finalists, scores, account)
        out[final] = vote(picked, countdown.final_answer) if final == "vote" else picked
    return out


def _pool_pick(suite, method, prompt, budget: Budget, s, n, trace) -> SearchResult:
    """'vote': the search picks by PRM-last and the vote re-reads its pool. The others: the
    search picks by the proxy, then the judges re-read the whole pool (for 'rank', the value
    model and the PRM: value calls)."""
    if s.final.startswith(("rank", "blend")) and budget.max_value_calls is not None:
        raise ConfigError(
            "final",
            f"{s.final!r} scores the finished answers with the value model and the PRM after the "
            "search, so it needs no cap on value calls; pick another final or lift the cap",
        )
    judge = "prm-last" if s.final == "vote" else "proxy"
    result = run_method(suite, method, prompt, budget, replace(s, final=judge), n=n, trace=trace)
    if s.final == "vote":
        picked = vote(result, countdown.final_answer)
    else:
        picked = repick(suite, result, [s.final])[s.final]
    trace.repicked(result.pick, picked.pick)
    return picked


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of every strategy; defaults suit Countdown answers (<= 19 tokens, 6 per step)."""

    max_new_tokens: int = 24
    """Cap on a response's length in tokens."""
    final: str = "proxy"
    """Every method's final pick, one of FINALS: 'proxy' (the reward model), 'legal+proxy' (the reward model behind the step-legality check), 'value', 'prm-min', 'prm-last', 'prm-prod', 'vote', 'rank' (the mean within-pool rank given by the proxy, the value model and the PRM's last step), 'policy' (the generator's mean log-probability per token of the answer), 'rank+policy' (the mean rank of all four) or 'blend' (a learned weighting of those four judges' scores: `lm train-blend`)."""
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
    subtrees: int = 4
    """dvts: independent greedy step searches, each keeping its best of `expand` next steps."""
    mcts_batch: int = 4
    """mcts: leaves selected (and steps sampled) per round. This and c_puct were chosen on 30 development prompts (seed 15000) with the value model as process scorer: 4 and 0.5 won 68% / 67% against Best-of-N at 128 / 512 tokens, 8 and 1.0 won 58% / 53%."""
    c_puct: float = 0.5
    """mcts: weight of the policy prior against the mean score in selection."""
    widen: float = 1.0
    """mcts: progressive widening, a node samples up to ceil(widen * (visits + 1) ** alpha) steps."""
    alpha: float = 0.5
    """mcts: progressive widening exponent."""
    backup: str = "mean"
    """mcts: Q of a node, the mean of the scores backed up through it or their max."""
    mix_share: float = 0.5
    """mix: fraction of the budget spent on independent samples (Best-of-N) before an MCTS with the settings above spends the rest; the final pick reads both pools."""
    process: str = "legal+value"
    """beam, dvts and mcts: process scorer (one of PARTIAL_SCORERS).  The partial-scorer defaults were chosen on development prompts (problem seed 15000, never the benchmark's). With the ridge predictors, the learned scorers alone tied Best-of-N and the legality check carried the wins; the fine-tuned value model ('model', the default value predictor) ranks partials well enough to win on its own at some budgets, and behind the check it won at every budget tried (60 prompts, 64-256 tokens). benchmarks/lm_search.py runs both, with and without the check."""


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
    """One search with `method` on `prompt`, picked by `s.final` (one of FINALS). A `Trace`
    passed as `trace` records the search tree (the search itself is unchanged)."""
    gen = suite.generator
    proxy = final_scorer(suite, s.final)
    if s.final in POOL_PICKS:  # a search by one judge, then its whole pool re-read
        return _pool_pick(suite, method, prompt, budget, s, n, trace)
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
    if method in ("dvts", "mcts", "mix"):
        return _tree_method(suite, method, proxy, prompt, budget, s, trace)
    if method == "beam":
        return _beam_method(suite, proxy, prompt, budget, s, trace)
    raise ConfigError("methods", f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def _beam_method(suite, final, prompt, budget, s: SearchSettings, trace) -> SearchResult:
    return beam_search(
        suite.generator,
        final,
        partial_scorer(suite, s.process, "process"),
        prompt,
        budget,
        max_new_tokens=s.max_new_tokens,
        step_delimiters=suite.delimiters,
        width=s.width,
        expand=s.expand,
        step_tokens=s.step_tokens,
        trace=trace,
    )


def _tree_method(suite, method, final, prompt, budget, s: SearchSettings, trace) -> SearchResult:
    process = partial_scorer(suite, s.process, "process")
    common = {
        "max_new_tokens": s.max_new_tokens,
        "step_delimiters": suite.delimiters,
        "step_tokens": s.step_tokens,
        "trace": trace,
    }
    if method == "dvts":
        return dvts(
            suite.generator,
            final,
            process,
            prompt,
            budget,
            subtrees=s.subtrees,
            expand=s.expand,
            **common,
        )
    search = mcts
    if method == "mix":
        search = partial(sample_then_search, share=s.mix_share)
    return search(
        suite.generator,
        final,
        process,
        prompt,
        budget,
        batch=s.mcts_batch,
        c_puct=s.c_puct,
        widen=s.widen,
        alpha=s.alpha,
        backup=s.backup,
        **common,
    )


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
    finals: Sequence[str] = (),
    on_done: Callable[[], None] | None = None,
) -> list[Record]:
    """Run every method on every prompt at every token budget. Each search is also re-picked
    by every final pick in `finals` (recorded as 'method [final]'): the same answers, another
    judge, spending the search's tokens plus that judge's calls."""
    for m in methods:
        if m not in METHODS:
            raise ConfigError("methods", f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if finals and (reward_calls is not None or settings.final != "proxy"):
        raise ConfigError(
            "final",
            "re-picking by other finals needs searches picked by the proxy with unlimited "
            "reward calls (the spending it re-books)",
        )
    records = []
    for b in budgets:
        budget = Budget(max_tokens=b, max_reward_calls=reward_calls)
        for i, prompt in enumerate(prompts):
            for m in methods:
                torch.manual_seed(seed * 1_000_003 + b * 7919 + i)  # same seed for every method
                searched = run_method(suite, m, prompt, budget, settings)
                records.append(_record(suite, m, b, i, prompt, searched, settings))
                for final, res in repick(suite, searched, finals).items():
                    label = f"{m} [{final}]"
                    records.append(_record(suite, label, b, i, prompt, res, settings))
                if on_done:
                    on_done()
    return records


def _record(suite, label, budget, index, prompt, res: SearchResult, settings) -> Record:
    gold = float(suite.gold([res.pick])[0])  # unmetered: judging, not searching
    proxy = res.score  # with another final pick, report the proxy's own score of the pick
    if settings.final != "proxy" or label.endswith("]"):
        proxy = float(suite.proxy([res.pick])[0])
    return Record(
        label,
        budget,
        index,
        prompt,
        res.pick.text,
        gold,
        proxy,
        res.spent.tokens,
        res.spent.reward_calls,
        res.spent.value_calls,
    )


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
