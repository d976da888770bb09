"""Monte-Carlo tree search over reasoning steps.

A node is a partial answer that ends on a step boundary; its children are next steps sampled
from the policy. Each round:

    1. select `batch` leaves, walking down from the root by PUCT,
           Q(child) + c_puct * P(child) * sqrt(N(parent)) / (1 + N(child)),
       where P is the policy's probability of the child's step (normalised over the siblings
       sampled so far) and Q the mean evaluator score below the child; a walk stops at a node
       that has sampled fewer steps than its widening limit ceil(widen * (N + 1) ** alpha)
       (progressive widening: a node earns new samples as it earns visits), or at a finished
       answer. Every node on a walk takes a virtual visit, so the batch spreads out;
    2. expand: every selected unfinished node samples one next step (one batched call);
       a step sampled twice becomes one child;
    3. evaluate the new children with the process scorer (a PRM or value model), one call;
    4. back the scores up the walked paths.

Rounds go on while their worst case (every row samples `step_tokens` tokens, every new child is
scored and may join the final pool) fits the budget. The final reward then scores every finished
answer in the tree and picks, as every other strategy does.

`StepTree` is the search itself and knows nothing about text: `expand` and `evaluate` are passed
in, which is how the tests check it finds the best leaf of a synthetic tree with known values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(eq=False)
class TreeNode:
    state: Any
    prior: float = 1.0
    """Probability of the step that made this node, under the policy (unnormalised)."""
    value: float = 0.0
    """The evaluator's score of this node when it was made."""
    terminal: bool = False
    parent: TreeNode | None = None
    children: dict[Hashable, TreeNode] = field(default_factory=dict)
    visits: int = 0
    total: float = 0.0
    best: float = float("-inf")
    """Highest value backed up through this node."""
    samples: int = 0
    """Steps sampled from this node, repeats included (widening counts samples, not distinct children)."""

    def q(self, backup: str) -> float:
        if backup == "max":
            return max(self.best, self.value)
        return self.total / self.visits if self.visits else self.value


BACKUPS = ("mean", "max")
"""Q of a node: the mean of the values backed up through it (AlphaZero), or the highest one
(optimistic: right when values are exact, as on a known tree; noisier with a learned scorer)."""


class StepTree:
    """PUCT selection with progressive widening, batched by virtual visits."""

    def __init__(
        self, root: Any, *, c_puct: float, widen: float, alpha: float, backup: str = "mean"
    ):
        if c_puct < 0 or widen <= 0 or not 0 <= alpha <= 1:
            raise ConfigError(
                "mcts",
                f"need c_puct >= 0, widen > 0 and alpha in [0, 1], got {c_puct}, {widen}, {alpha}",
            )
        if backup not in BACKUPS:
            raise ConfigError("backup", f"must be one of {', '.join(BACKUPS)}, got {backup!r}")
        self.root = TreeNode(root)
        self.c_puct, self.widen, self.alpha, self.backup_rule = c_puct, widen, alpha, backup

    def widen_limit(self, node: TreeNode) -> int:
        return math.ceil(self.widen * (node.visits + 1) ** self.alpha)

    def _best_child(self, node: TreeNode) -> TreeNode:
        kids = list(node.children.values())
        priors = np.array([k.prior for k in kids])
        priors = priors / priors.sum() if priors.sum() > 0 else np.full(len(kids), 1 / len(kids))
        visits = np.array([k.visits for k in kids])
        q = np.array([k.q(self.backup_rule) for k in kids])
        puct = q + self.c_puct * priors * math.sqrt(max(node.visits, 1)) / (1 + visits)
        return kids[int(np.argmax(puct))]  # ties: the earliest sampled child

    def select(self, batch: int) -> list[TreeNode]:
        """`batch` walks from the root; each node walked through takes a virtual visit (scored
        0 until the backup adds the real value), which steers later walks elsewhere, and a walk
        that stops to expand a node books its sample at once, so the next walk of the batch
        already sees the node's widening used (and goes below it when it has children)."""
        leaves = []
        for _ in range(batch):
            node = self.root
            node.visits += 1
            while not node.terminal and node.children and node.samples >= self.widen_limit(node):
                node = self._best_child(node)
                node.visits += 1
            if not node.terminal:
                node.samples += 1
            leaves.append(node)
        return leaves

    def add(self, parent: TreeNode, key: Hashable, state, prior: float, value, terminal: bool):
        """The child of `parent` under `key` (a new one unless that step was sampled before)."""
        child = parent.children.get(key)
        if child is None:
            child = TreeNode(state, prior, float(value), terminal, parent)
            parent.children[key] = child
        return child

    def backup(self, leaf: TreeNode, value: float, *, new_visit: bool) -> None:
        """Add `value` along the path up from `leaf`; the walk's virtual visits become real
        (`new_visit`: `leaf` itself was not on the walk, it was just made or re-sampled)."""
        node = leaf
        if new_visit:
            node.visits += 1
        while node is not None:
            node.total += value
            node.best = max(node.best, value)
            node = node.parent

    def nodes(self) -> list[TreeNode]:
        out, stack = [], [self.root]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out


def run_rounds(
    tree: StepTree,
    expand: Callable[[list[TreeNode]], list[tuple[Hashable, Any, float, bool]]],
    evaluate: Callable[[list[Any]], np.ndarray],
    *,
    batch: int,
    affordable: Callable[[int], int],
    max_idle_rounds: int = 100,
) -> None:
    """Select, expand, evaluate and back up until `affordable(rows)` (how many of `rows`
    expansions the budget still pays for) says none. `expand(nodes)` gives one (key, state,
    prior, terminal) per node; `evaluate(states)` scores the new states."""
    idle = 0
    while idle < max_idle_rounds:
        leaves = tree.select(batch)
        open_ = [n for n in leaves if not n.terminal]
        for n in leaves:
            if n.terminal:
                tree.backup(n, n.value, new_visit=False)
        if not open_:
            idle += 1  # only finished answers were selected; their visits widen the parents
            continue
        rows = affordable(len(open_))
        for n in open_[rows:]:  # walks the budget cannot expand: undo their visits and samples
            n.samples -= 1
            while n is not None:
                n.visits -= 1
                n = n.parent
        if rows < 1:
            return
        idle = 0
        grown = expand(open_[:rows])
        values = evaluate([state for _, state, _, _ in grown])
        for parent, (key, state, prior, terminal), v in zip(
            open_[:rows], grown, values, strict=True
        ):
            child = tree.add(parent, key, state, prior, v, terminal)
            tree.backup(child, child.value, new_visit=True)


def mcts(
    generator: Generator,
    reward: Scorer,
    process: Scorer,
    prompt: str,
    budget: Budget,
    *,
    max_new_tokens: int,
    step_delimiters: set[int],
    step_tokens: int = 8,
    batch: int = 8,
    c_puct: float = 1.0,
    widen: float = 1.0,
    alpha: float = 0.5,
    backup: str = "mean",
    trace: NullTrace = NO_TRACE,
) -> SearchResult:
    """MCTS over steps (`step_delimiters`: token ids ending a step) scored by `process` at the
    leaves; the final `reward` picks among the finished answers. `trace` records the tree."""
    if batch < 1 or step_tokens < 1:
        raise ConfigError("mcts", f"batch and step_tokens must be >= 1, got {batch}, {step_tokens}")
    step_tokens = check_step_search(
        budget, reward, process, max_new_tokens, step_delimiters, step_tokens
    )
    account = Account(budget)
    trace.new_restart()
    root = generator.start(prompt, 1, max_new_tokens)[0]
    tree = StepTree(root, c_puct=c_puct, widen=widen, alpha=alpha, backup=backup)
    finished: list[Candidate] = []

    def affordable(rows: int) -> int:
        return _affordable_rows(account, process, reward, len(finished), rows, step_tokens)

    def expand(nodes: list[TreeNode]) -> list[tuple]:
        before = [n.state for n in nodes]
        grown = generator.extend(
            before, step_tokens, account, stop_ids=step_delimiters, max_total_tokens=max_new_tokens
        )
        grown = trace.grow(before, grown, 0)
        out = []
        for parent, child in zip(before, grown, strict=True):
            if child.finished and child.token_ids not in {c.token_ids for c in finished}:
                finished.append(child)
            prior = math.exp(min(0.0, child.logprob - parent.logprob))
            out.append((child.token_ids, child, prior, child.finished))
        return out

    def evaluate(states: list[Candidate]) -> np.ndarray:
        scores = process(states, account)
        trace.scored(states, scores, process, 0)
        return scores

    run_rounds(tree, expand, evaluate, batch=batch, affordable=affordable)
    pool = within_reward_calls(finished or _best_partials(tree), account, reward)
    scores = reward(pool, account)
    trace.final(pool, scores, reward)
    return pick_best("mcts", pool, scores, account, trace)


def _affordable_rows(account, process, reward, pooled: int, rows: int, step_tokens: int) -> int:
    """The most of `rows` expansions whose worst case fits what is left (`round_fits`)."""
    while rows > 0 and not round_fits(account, process, reward, pooled, rows, step_tokens):
        rows -= 1
    return rows


def _best_partials(tree: StepTree) -> list[Candidate]:
    """With no finished answer, the deepest partials compete as they are (as beam's do)."""
    nodes = [n for n in tree.nodes() if n is not tree.root]
    if not nodes:
        return []
    deepest = max(len(n.state.token_ids) for n in nodes)
    return [n.state for n in nodes if len(n.state.token_ids) == deepest]


def best_leaf(tree: StepTree, score: Callable[[Sequence[Any]], np.ndarray]) -> Any:
    """The terminal state with the highest `score` (used by tests on synthetic trees)."""
    leaves = [n.state for n in tree.nodes() if n.terminal]
    return leaves[int(np.argmax(score(leaves)))] if leaves else None
