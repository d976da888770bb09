"""`forethought explain` for tree search (--planner mcts): why this discrete action?

tools/explain.py loads the snapshot the episode started from (model, learned value, random
state); here the episode is replayed up to the asked step and the search run again: the report
gives, per action at the root, the simulations spent on it and its mean imagined return, with
the learned value of the state and how far the tree looked ahead.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from forethought.agents.tree import TreeSearchAgent
from forethought.errors import DataError
from forethought.reporting.plots import save_figure


def decision(agent: TreeSearchAgent, obs: np.ndarray, actions: np.ndarray, t: int) -> dict:
    """Replay the episode's logged observations up to step t (each replayed action must be the
    logged one), search again at t, and describe the root of that search."""
    for i in range(t):
        if not np.array_equal(agent.act(obs[i][None])[0], actions[i]):
            raise DataError(
                f"replaying the episode from its snapshot gives another action at its step {i} "
                "than the run took: the model was refitted during the episode (the drift "
                "monitor), and explain can replay only the steps before such a refit"
            )
    action = agent.act(obs[t][None])[0]
    search = agent.last_search
    visits, q = search.visits[0].tolist(), search.q[0].tolist()
    return {
        "state": obs[t].tolist(),
        "logged_action": actions[t].tolist(),
        "action": action.tolist(),
        "reproduced": bool(np.array_equal(action, actions[t])),
        "rule": agent.config.rule,
        "simulations": agent.config.simulations,
        "root_actions": [
            {"action": a, "visits": v, "mean_return": None if np.isnan(m) else m}
            for a, (v, m) in enumerate(zip(visits, q, strict=True))
        ],
        "root_value": float(search.root_value[0]),
        "learned_value": _learned_value(agent, obs[t]),
        "tree_depth": int(search.depth[0]),
        "edge_disagreement": agent.plan_disagreement[-1] if agent.plan_disagreement else None,
    }


def _learned_value(agent, state: np.ndarray) -> float | None:
    if agent.state_value is None:
        return None
    with torch.no_grad():
        return float(agent.state_value(torch.as_tensor(state)[None])[0])


def summary(report: dict[str, Any]) -> str:
    chosen = int(np.argmax(report["action"]))
    verdict = "the action the run took" if report["reproduced"] else "NOT the action the run took"
    spread = ", ".join(
        f"{r['action']}: {r['visits']:.0f} visits, return "
        + ("-" if r["mean_return"] is None else f"{r['mean_return']:.1f}")
        for r in report["root_actions"]
    )
    return (
        f"step {report['step']} (episode {report['episode']}, t={report['t']}): action {chosen}, "
        f"{verdict}; {spread}; tree depth {report['tree_depth']}"
    )


def plot(report: dict[str, Any], imagined: dict, path) -> None:
    rows = report["root_actions"]
    labels = [str(r["action"]) for r in rows]
    chosen = int(np.argmax(report["action"]))
    colors = ["tab:blue" if i == chosen else "0.6" for i in range(len(rows))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    left.bar(labels, [r["visits"] for r in rows], color=colors)
    left.set(xlabel="root action", ylabel="simulations", title="where the search looked")
    right.bar(labels, [r["mean_return"] or 0.0 for r in rows], color=colors)
    right.set(xlabel="root action", ylabel="mean imagined return", title="what it found")
    fig.suptitle(
        f"{report['env']} step {report['step']}: {report['rule']} search, "
        f"{report['simulations']} simulations (chosen in blue)",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)
