"""Learning-curve plots (matplotlib, written to PNG without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt


def plot_offline_curve(
    history: list[dict[str, Any]], path: Path, title: str, behaviour_return: float
) -> Path:
    """An offline run: evaluation return (mean ± std) against gradient steps, next to the
    average return of the behaviour that logged the dataset."""
    rows = [r for r in history if r.get("eval_return") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if rows:
        x = [r["gradient_steps"] for r in rows]
        mean = np.array([r["eval_return"] for r in rows])
        std = np.array([r["eval_return_std"] for r in rows])
        ax.plot(x, mean, "o-", color="tab:blue", label="evaluation return (mean)")
        ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.2, label="± std")
    ax.axhline(
        behaviour_return, color="0.4", ls="--", label=f"dataset behaviour ({behaviour_return:.1f})"
    )
    ax.set_xlabel("gradient steps (no environment interaction)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_learning_curve(
    history: list[dict[str, Any]], path: Path, title: str, threshold: float | None = None
) -> Path:
    """Evaluation return (mean +- std over evaluation episodes) and training return against
    environment steps."""
    rows = [r for r in history if "event" not in r and r.get("return") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    steps = [r["env_steps"] for r in rows]
    ax.plot(
        steps, [r["return"] for r in rows], "o--", color="0.55", label="training episode return"
    )
    # Episode-end evaluations and step-schedule ones ("evaluation" events), in step order.
    evals = sorted(
        (
            r
            for r in history
            if r.get("eval_return") is not None and r.get("event") in (None, "evaluation")
        ),
        key=lambda r: r["env_steps"],
    )
    if evals:
        x = [r["env_steps"] for r in evals]
        mean = [r["eval_return"] for r in evals]
        std = [r["eval_return_std"] for r in evals]
        ax.plot(x, mean, "o-", color="tab:blue", label="evaluation return (mean)")
        ax.fill_between(
            x,
            [m - s for m, s in zip(mean, std, strict=False)],
            [m + s for m, s in zip(mean, std, strict=False)],
            color="tab:blue",
            alpha=0.2,
            label="evaluation ± std",
        )
        actor = [
            (r["env_steps"], r["eval_actor_return"])
            for r in evals
            if r.get("eval_actor_return") is not None
        ]
        if actor:  # --algo loop: its SAC policy alone on the same seeds, the planner's control
            ax.plot(*zip(*actor, strict=True), "s:", color="tab:orange", label="its actor alone")
    if threshold is not None:
        ax.axhline(threshold, color="tab:green", ls=":", label=f"solved ({threshold:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write `fig` to `path` atomically (a reader never sees half a PNG) and close it."""
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
