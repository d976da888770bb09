"""The search tree of one prompt: which partials were grown, scored, pruned, finished and picked.

`explain` runs one search with a `Trace` (the search is the same one `forethought lm generate`
runs with the same seed and budget: recording changes neither its samples nor its spend), then
judges every answer in the final pool with the gold verifier, which the search never saw. The
tree is written as JSON, drawn with matplotlib, and rendered as indented text.
"""

from __future__ import annotations

from pathlib import Path

from forethought.lm.artifacts.shipped import CountdownSuite
from forethought.lm.budget import Budget
from forethought.lm.compare import SearchSettings, run_method
from forethought.lm.search import Node, SearchResult, Trace
from forethought.lm.tasks import countdown

COLOURS = {
    "picked": "#d4a017",
    "finished": "#2e8b57",
    "cut": "#e67e22",
    "pruned": "#c0392b",
    "expanded": "#2c6fbb",
    "dropped": "#999999",
}
"""Marker colour of each node status in the drawing."""


def explain(
    suite: CountdownSuite, method: str, prompt: str, budget: Budget, settings: SearchSettings
) -> tuple[SearchResult, Trace]:
    """Run `method` on `prompt` while recording its tree; judge the final pool with gold."""
    trace = Trace(prompt)
    result = run_method(suite, method, prompt, budget, settings, trace=trace)
    if suite.gold is not None:
        trace.judge(suite.gold)
    return result, trace


def as_json(result: SearchResult, trace: Trace, **run: object) -> dict:
    """The tree and the run that made it (`run`: method, budget, seed, settings...)."""
    pick = trace.pick()
    tree = trace.as_dict()
    for node in tree["nodes"]:
        node["segment"] = _segment(trace, trace.nodes[node["id"]])
        node["legal"] = _legal(trace.prompt, node["text"])
    return {
        **run,
        "spent": result.spent.as_dict(),
        "pick": {
            "node": pick.id if pick else None,
            "text": result.pick.text,
            "score": result.score,
            "gold": pick.gold if pick else None,
        },
        **tree,
    }


def _legal(prompt: str, text: str) -> float | None:
    """Countdown's step-legality check of a partial (None when the prompt is no Countdown one)."""
    try:
        return countdown.steps_legal(prompt, text)
    except ValueError:
        return None


def _segment(trace: Trace, node: Node) -> str:
    """The text this node added to its parent's (the whole text when they do not line up)."""
    if node.parent is None:
        return ""
    before = trace.nodes[node.parent].text
    return node.text[len(before) :] if node.text.startswith(before) else node.text


def _label(node: Node) -> str:
    """Scores of one node, shortest first: partial score, final reward, gold."""
    parts = []
    if node.score is not None:
        parts.append(f"score {node.score:.2f}")
    if node.final_score is not None:
        parts.append(f"final {node.final_score:.2f}")
    if node.gold is not None:
        parts.append(f"gold {node.gold:.2f}")
    return "  ".join(parts)


def _status(node: Node) -> str:
    if node.status == "pruned":
        return f"pruned@r{node.pruned_round}"
    if node.status == "picked":
        return "<== PICK"
    return node.status


def render_text(trace: Trace, result: SearchResult, method: str, budget: int) -> list[str]:
    """An indented tree, one line per node: text so far, tokens, scores, what became of it."""
    spent = result.spent
    lines = [
        f"{method} on {trace.prompt!r}: {len(trace.nodes) - 1} nodes, {spent.tokens}/{budget} "
        f"tokens, {spent.reward_calls} reward calls, {spent.value_calls} value calls",
        f"score: {_partial_scorer(trace)} on the partial; final: {trace.final_scorer}; "
        "gold: the gold verifier (judging only, never seen by the search)",
    ]

    def walk(node: Node, indent: int) -> None:
        for child_id in node.children:
            child = trace.nodes[child_id]
            again = f" [restart {child.restart}]" if indent == 1 and child.restart else ""
            text = f"{'  ' * indent}#{child.id}{again} {child.text!r} +{child.tokens}t"
            scores = _label(child)
            lines.append(
                f"{text}  {scores}  {_status(child)}" if scores else f"{text}  {_status(child)}"
            )
            walk(child, indent + 1)

    walk(trace.nodes[0], 1)
    return lines


def _partial_scorer(trace: Trace) -> str:
    names = dict.fromkeys(n.scorer for n in trace.nodes if n.scorer is not None)
    return ", ".join(names) or "nothing (no partial was scored)"


def _layout(trace: Trace) -> dict[int, tuple[float, int]]:
    """(x, depth) of every node: leaves side by side in tree order, parents above the middle
    of their children."""
    pos: dict[int, tuple[float, int]] = {}
    next_x = 0

    def place(node: Node) -> float:
        nonlocal next_x
        if not node.children:
            x, next_x = float(next_x), next_x + 1
        else:
            xs = [place(trace.nodes[c]) for c in node.children]
            x = (min(xs) + max(xs)) / 2
        pos[node.id] = (x, node.depth)
        return x

    place(trace.nodes[0])
    return pos


def plot_tree(trace: Trace, result: SearchResult, method: str, path: Path) -> Path:
    """The tree, root on top: one marker per node coloured by what became of it, and under each
    the text it added and its scores (s: partial score, f: final reward, g: gold)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    pos = _layout(trace)
    leaves = sum(1 for n in trace.nodes if not n.children)
    depth = max(d for _, d in pos.values())
    fig, ax = plt.subplots(figsize=(max(7.0, 0.32 * leaves + 2), 1.9 * depth + 2.6))
    _draw_nodes(ax, trace, pos)
    ax.scatter(pos[0][0], 0, s=60, color="black", marker="s", zorder=2)
    for status, colour in COLOURS.items():
        ax.scatter([], [], color=colour, label=status, marker="*" if status == "picked" else "o")
    ax.legend(loc="upper right", fontsize=7, ncol=len(COLOURS), frameon=False)
    ax.set_ylim(-depth - 1.0, 0.6)
    ax.set_yticks(
        [-d for d in range(depth + 1)], ["prompt", *(f"depth {d}" for d in range(1, depth + 1))]
    )
    ax.set_xticks([])
    spent = result.spent
    ax.set_title(
        f"{method} on {trace.prompt!r}: {spent.tokens} tokens, pick {result.pick.text!r}"
        f" (final {result.score:.2f})",
        fontsize=9,
    )
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return Path(path)


def _draw_nodes(ax, trace: Trace, pos: dict[int, tuple[float, int]]) -> None:
    """Edges, then one marker per node with its added text and scores written below it."""
    for node in trace.nodes[1:]:
        (x, y), (px, py) = pos[node.id], pos[node.parent]
        ax.plot([px, x], [-py, -y], color="#bbbbbb", lw=0.8, zorder=1)
    for node in trace.nodes[1:]:
        x, y = pos[node.id]
        big = node.status == "picked"
        ax.scatter(
            x,
            -y,
            s=160 if big else 40,
            color=COLOURS[node.status],
            zorder=2,
            marker="*" if big else "o",
            edgecolors="black" if big else "none",
        )
        ax.annotate(
            _short_label(trace, node),
            (x, -y),
            xytext=(0, -7),
            textcoords="offset points",
            rotation=90,
            ha="center",
            va="top",
            fontsize=6,
            family="monospace",
            bbox={"fc": "white", "ec": "none", "pad": 0.3, "alpha": 0.85},
        )


def _short_label(trace: Trace, node: Node) -> str:
    scores = [(k, v) for k, v in (("s", node.score), ("f", node.final_score), ("g", node.gold))]
    nums = " ".join(f"{k}{v:.2f}" for k, v in scores if v is not None)
    added = _segment(trace, node)
    shown = repr(added) if added or not node.complete else "(end)"
    return f"{shown} {nums}".strip()
