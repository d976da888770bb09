"""Held-out evaluation for self-training: sampling, search at a fixed budget, predictor drift.

Every iteration's policy is judged on the same held-out prompts three ways:

  plain      `samples` independent samples per prompt (no search); pass@1 is the fraction solved
  bon        Best-of-N with the proxy reward at `budget` tokens per prompt
  lookahead  value-guided look-ahead at the same budget, with the predictor fitted to this policy

Each is scored by the proxy reward (what search optimises) and the gold verifier (what is true);
proxy minus gold is the reward-hacking gap. The predictor's rank correlation with the gold reward
is measured on this policy's plain samples twice: with the predictor fitted to the previous policy
(before retraining) and with the one refitted to this policy (after).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Candidate, Generator
from forethought.lm.rewards import Scorer
from forethought.lm.search import SearchResult, best_of_n, lookahead
from forethought.lm.value import rank_correlation_by_length
from forethought.storage import atomic_write_bytes

METHODS = ("plain", "bon", "lookahead")
BOOTSTRAP = 2000
"""Bootstrap resamples of the prompts for every confidence interval."""


def sample_many(
    generator: Generator, prompts: Sequence[str], n: int, max_new_tokens: int
) -> list[Candidate]:
    """`n` plain samples for each prompt, prompt-major (rows i*n .. i*n+n-1 belong to prompt i).

    All prompts go through one batched `extend`, which is much faster than a call per prompt.
    """
    rows = [c for p in prompts for c in generator.start(p, n, max_new_tokens)]
    return generator.extend(rows, max_new_tokens, Account(Budget(len(rows) * max_new_tokens)))


def bootstrap_ci(values: Sequence[float], seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of `values` (one value per prompt)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return [float(v.mean()), float(v.mean())] if v.size else [float("nan")] * 2
    idx = np.random.default_rng(seed).integers(0, v.size, size=(BOOTSTRAP, v.size))  # B x P
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def _summary(gold: np.ndarray, solved: np.ndarray, proxy: np.ndarray, tokens: float) -> dict:
    """Means over prompts (each argument holds one number per prompt) with a gold CI."""
    return {
        "gold": float(gold.mean()),
        "gold_ci": bootstrap_ci(gold),
        "pass1": float(solved.mean()),
        "proxy": float(proxy.mean()),
        "gap": float(proxy.mean() - gold.mean()),
        "tokens": float(tokens),
    }


def evaluate_policy(
    generator: Generator,
    proxy: Scorer,
    gold: Scorer,
    value_before: Scorer | None,
    value_after: Scorer,
    prompts: Sequence[str],
    *,
    samples: int,
    budget: int,
    max_new_tokens: int,
    prefix_tokens: int,
    keep: float,
    seed: int,
    on_done: Callable[[], None] | None = None,
) -> tuple[dict, dict]:
    """Judge one policy on held-out `prompts`: (summary for metrics.jsonl, per-prompt numbers).

    Per-prompt numbers are kept so that iterations can be compared prompt by prompt (paired).
    `on_done` is called 1 + 2 x len(prompts) times: after the plain samples, then per search.
    """
    on_done = on_done or (lambda: None)
    torch.manual_seed(seed)
    cands = sample_many(generator, prompts, samples, max_new_tokens)
    g = gold(cands)  # (P*S,)
    per_prompt = {"plain": _per_prompt_means(g, proxy(cands), samples)}
    tokens = {"plain": float(np.mean([len(c.token_ids) for c in cands]))}
    on_done()
    groups = np.repeat(np.arange(len(prompts)), samples)  # the prompt of every sample
    corr = {
        name: rank_correlation_by_length(
            value, generator, cands, g, groups, lengths=(prefix_tokens,)
        )
        for name, value in (("before", value_before), ("after", value_after))
        if value is not None
    }
    search = functools.partial(
        _search,
        generator,
        proxy,
        value_after,
        budget=budget,
        max_new_tokens=max_new_tokens,
        prefix_tokens=prefix_tokens,
        keep=keep,
    )
    for method in ("bon", "lookahead"):
        per_prompt[method], tokens[method] = _search_each(
            search, method, prompts, gold, seed, on_done
        )
    summary = {
        m: _summary(d["gold"], d["solved"], d["proxy"], tokens[m]) for m, d in per_prompt.items()
    }
    summary["value_corr"] = corr
    lists = {m: {k: np.asarray(v).tolist() for k, v in d.items()} for m, d in per_prompt.items()}
    return summary, lists


def _search(
    generator,
    proxy,
    value,
    method: str,
    prompt: str,
    *,
    budget,
    max_new_tokens,
    prefix_tokens,
    keep,
) -> SearchResult:
    """Best-of-N, or look-ahead guided by `value`, at `budget` tokens."""
    if method == "bon":
        return best_of_n(generator, proxy, prompt, Budget(budget), max_new_tokens=max_new_tokens)
    return lookahead(
        generator,
        proxy,
        value,
        prompt,
        Budget(budget),
        max_new_tokens=max_new_tokens,
        prefix_tokens=prefix_tokens,
        keep=keep,
    )


def _per_prompt_means(gold: np.ndarray, proxy: np.ndarray, samples: int) -> dict:
    """Per-prompt means of prompt-major samples (`P*S` scores in, `P` numbers out)."""
    return {
        "gold": gold.reshape(-1, samples).mean(1),  # P
        "solved": (gold == 1.0).reshape(-1, samples).mean(1),
        "proxy": proxy.reshape(-1, samples).mean(1),
    }


def _search_each(
    search, method: str, prompts, gold: Scorer, seed: int, on_done
) -> tuple[dict, float]:
    """`search(method, prompt)` on every prompt, each from the same seed for every method:
    (per-prompt gold, solved and proxy of the picks, mean tokens spent)."""
    picks, spent = [], []
    for i, prompt in enumerate(prompts):
        torch.manual_seed(seed * 1_000_003 + i)  # the same seed for both methods
        res = search(method, prompt)
        picks.append((res.pick, res.score))
        spent.append(res.spent.tokens)
        on_done()
    pg = gold([p for p, _ in picks])
    per_prompt = {
        "gold": pg,
        "solved": (pg == 1.0).astype(np.float64),
        "proxy": np.array([s for _, s in picks]),
    }
    return per_prompt, float(np.mean(spent))


def plot_selftrain(rows: Sequence[dict], path, prefix_tokens: int) -> str:
    """Three panels against iteration: gold reward (with CIs), predictor correlation, gap."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for m in METHODS:
        mean = np.array([r[m]["gold"] for r in rows])
        ci = np.array([r[m]["gold_ci"] for r in rows])  # I x 2
        line = ax.errorbar(
            its, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], marker="o", capsize=3, label=m
        )
        ax.plot(its, [r[m]["pass1"] for r in rows], ":", color=line[0].get_color(), alpha=0.7)
    ax.set_title("held-out gold reward (solid), pass@1 (dotted)", fontsize=9)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    ax = axes[1]
    key = str(prefix_tokens)
    for name, style in (("before", "x--"), ("after", "o-")):
        xs = [r["iteration"] for r in rows if name in r["value_corr"]]
        ys = [r["value_corr"][name][key]["pooled"] for r in rows if name in r["value_corr"]]
        ax.plot(xs, ys, style, label=f"{name} refit")
    ax.set_title(f"predictor Spearman vs gold ({prefix_tokens}-token prefixes)", fontsize=9)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    ax = axes[2]
    for m in METHODS:
        ax.plot(its, [r[m]["gap"] for r in rows], "o-", label=m)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_title("proxy minus gold reward", fontsize=9)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(its)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), png.getvalue())
    return str(path)
