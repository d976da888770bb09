"""A sweep's results: every trial's record, per group (config without the seed) IQM, median and
mean of the final score (a train run's evaluation return, an lm run's held-out gold) with 95%
bootstrap intervals over seeds, the machine, and a plot of the score against progress
(environment steps, GRPO steps or iterations; one line per group, spread over seeds)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

from forethought import runtime
from forethought.reporting.plots import save_figure

BOOTSTRAP = 2_000
AXIS = {
    "env_steps": "environment steps",
    "eval_return": "evaluation return",
    "step": "GRPO step",
    "iteration": "self-training iteration",
    "plain_gold": "held-out gold (one sample per prompt)",
}


def machine_info() -> dict[str, Any]:
    """What the sweep ran on (the same record as every benchmark's)."""
    return runtime.machine_info(
        ("forethought", "torch", "numpy", "gymnasium", "stable-baselines3", "ray")
    )


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: rliable's, or the same 25%-trimmed mean without it."""
    try:
        from rliable import metrics

        return float(metrics.aggregate_iqm(values.reshape(-1, 1)))
    except ImportError:
        x = np.sort(values)
        cut = int(0.25 * len(x))
        return float(x[cut : len(x) - cut].mean())


def aggregate(values: list[float], seed: int = 0) -> dict[str, Any]:
    """IQM, median and mean with 95% percentile-bootstrap intervals, resampling the seeds.

    Resampled here: rliable's own interval code (rliable.library) needs arch<8, which fails to
    import next to pandas 3 (see benchmarks/sample_efficiency.py)."""
    x = np.asarray(values, dtype=float)
    stats = {"iqm": iqm, "median": lambda v: float(np.median(v)), "mean": lambda v: float(v.mean())}
    rng = np.random.default_rng(seed)
    draws = [x[rng.integers(0, len(x), len(x))] for _ in range(BOOTSTRAP)]
    out: dict[str, Any] = {"n": len(x)}
    for name, stat in stats.items():
        lo, hi = np.percentile([stat(d) for d in draws], [2.5, 97.5])
        out[name] = stat(x)
        out[f"{name}_ci95"] = [float(lo), float(hi)]
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per group: its settings, seeds, final returns and their aggregates."""
    groups: dict[str, Any] = {}
    for record in records:
        entry = groups.setdefault(
            record["group"], {"settings": record["settings"], "seeds": [], "final_score": []}
        )
        if record["final_score"] is not None:
            entry["seeds"].append(record["seed"])
            entry["final_score"].append(record["final_score"])
    for entry in groups.values():
        if entry["final_score"]:
            entry["aggregate"] = aggregate(entry["final_score"])
    return groups


def _step_values(record: dict[str, Any], grid: np.ndarray) -> np.ndarray:
    """A trial's evaluations as a step function on `grid` (NaN before its first one)."""
    steps = np.asarray(record["evaluations"]["x"], dtype=float)
    returns = np.asarray(record["evaluations"]["y"], dtype=float)
    index = np.searchsorted(steps, grid, side="right") - 1
    return np.where(index >= 0, returns[np.clip(index, 0, None)], np.nan)


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Mean score over seeds per group against progress, shaded from the lowest to the highest
    seed; the axes are named by the records' x_name and score_name."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for group in dict.fromkeys(r["group"] for r in records):
        runs = [r for r in records if r["group"] == group and r["evaluations"]["x"]]
        if not runs:
            continue
        grid = np.unique(np.concatenate([r["evaluations"]["x"] for r in runs]))
        values = np.array([_step_values(r, grid) for r in runs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns before any evaluation
            mean = np.nanmean(values, axis=0)
            lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        (line,) = ax.plot(grid, mean, "o-", ms=3, label=f"{group} ({len(runs)} seeds)")
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)
    first = records[0] if records else {}
    ax.set_xlabel(AXIS.get(first.get("x_name"), first.get("x_name", "progress")))
    ax.set_ylabel(AXIS.get(first.get("score_name"), first.get("score_name", "score")))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
