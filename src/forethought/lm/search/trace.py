"""A record of one search's tree: every partial and finished candidate, who it grew from, what
it cost, how it was scored, whether it was expanded, pruned or picked.

Strategies take an optional `trace`; without one they get `NO_TRACE`, whose hooks return their
input untouched, so an unrecorded search does exactly what it did before (same samples, same
spend). A `Trace` tags each candidate it sees with its node id in `Candidate.meta` (a field that
takes no part in equality and that nothing in a search reads), which is how a later hook finds
the node of a candidate after the search has reordered, pruned or pooled its lists.

The tree's root (node 0) is the empty response to the prompt. Each call of the generator that
grows a candidate makes a child node holding the tokens sampled in that call; a candidate that
was not grown (it had finished) stays the same node and may be scored again in a later round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from forethought.lm.generator import Candidate


@dataclass
class Node:
    """One partial or finished candidate in a search tree."""

    id: int
    parent: int | None
    depth: int
    """Generator calls between the prompt and this node (0 for the root)."""
    round: int
    """Segment (look-ahead, pruning), step (beam) or 0 (Best-of-N) in which the node was grown."""
    restart: int
    """Which pass of the search grew it (a search restarts on budget left by early answers)."""
    tokens: int
    """Tokens sampled for this node alone (its parent's are not counted again)."""
    token_ids: list[int]
    """The whole response so far: the parent's tokens and this node's."""
    text: str
    complete: bool = False
    """The response ended (end-of-sequence or the length cap)."""
    score: float | None = None
    """Latest partial score (value, legality-gated value, process or proxy score on the partial)."""
    scorer: str | None = None
    scored_round: int | None = None
    pruned_round: int | None = None
    """The round whose ranking rejected this node; a pruned node is never grown again."""
    children: list[int] = field(default_factory=list)
    final_score: float | None = None
    """Score of the final reward when the node reached the final pool."""
    gold: float | None = None
    """Gold verifier's score of a final-pool node (judging only; the search never saw it)."""
    picked: bool = False

    @property
    def status(self) -> str:
        """picked; finished (a complete answer the final reward scored); cut (a partial the
        budget stopped, scored by the final reward as it is); pruned; expanded; dropped."""
        if self.picked:
            return "picked"
        if self.final_score is not None:
            return "finished" if self.complete else "cut"
        if self.pruned_round is not None:
            return "pruned"
        return "expanded" if self.children else "dropped"


class NullTrace:
    """Records nothing: every hook hands its candidates back unchanged."""

    def new_restart(self) -> None:
        pass

    def grow(self, before: Sequence[Candidate] | None, after: list[Candidate], round_: int):
        return after

    def scored(self, cands: Sequence[Candidate], scores: np.ndarray, scorer, round_: int) -> None:
        pass

    def pruned(self, cands: Sequence[Candidate], kept: Sequence[int], round_: int) -> None:
        pass

    def final(self, cands: Sequence[Candidate], scores: np.ndarray, scorer) -> None:
        pass

    def picked(self, cand: Candidate) -> None:
        pass

    def repicked(self, old: Candidate, new: Candidate) -> None:
        """A later judge (a vote, ranks) chose `new` from the pool the search picked `old` from."""


NO_TRACE = NullTrace()


class Trace(NullTrace):
    """Records every node a search creates; `nodes[0]` is the prompt."""

    def __init__(self, prompt: str = ""):
        self.prompt = prompt
        self.nodes = [Node(0, None, 0, -1, -1, 0, [], "")]
        self.restart = -1
        self.final_scorer: str | None = None
        self._pool: dict[int, Candidate] = {}

    def new_restart(self) -> None:
        self.restart += 1

    def node(self, cand: Candidate) -> Node:
        return self.nodes[cand.meta.get("node", 0)]

    def grow(self, before, after, round_):
        """`after[i]` grew from `before[i]` (from the prompt when `before` is None): a new child
        node for each candidate that is a new object, the same node for one left as it was."""
        out = []
        for i, new in enumerate(after):
            old = None if before is None else before[i]
            if old is new:
                out.append(new)
                continue
            parent = self.node(old) if old is not None else self.nodes[0]
            done = len(old.token_ids) if old is not None else 0
            node = Node(
                len(self.nodes),
                parent.id,
                parent.depth + 1,
                round_,
                self.restart,
                len(new.token_ids) - done,
                list(new.token_ids),
                new.text,
                complete=new.finished,
            )
            self.nodes.append(node)
            parent.children.append(node.id)
            out.append(replace(new, meta={**new.meta, "node": node.id}))
        return out

    def scored(self, cands, scores, scorer, round_):
        for c, s in zip(cands, scores, strict=True):
            node = self.node(c)
            node.score, node.scorer, node.scored_round = float(s), scorer.name, round_

    def pruned(self, cands, kept, round_):
        keep = {int(i) for i in kept}
        for i, c in enumerate(cands):
            if i not in keep:
                self.node(c).pruned_round = round_

    def final(self, cands, scores, scorer):
        self.final_scorer = scorer.name
        for c, s in zip(cands, scores, strict=True):
            node = self.node(c)
            node.final_score = float(s)
            self._pool[node.id] = c

    def picked(self, cand):
        self.node(cand).picked = True

    def repicked(self, old, new):
        self.node(old).picked = False
        self.node(new).picked = True

    # -- after the search ---------------------------------------------------------------------
    def judge(self, gold) -> None:
        """Score every final-pool node with `gold` (a Scorer, unmetered: it only judges)."""
        ids = sorted(self._pool)
        if ids:
            for i, s in zip(ids, gold([self._pool[i] for i in ids]), strict=True):
                self.nodes[i].gold = float(s)

    @property
    def tokens(self) -> int:
        return sum(n.tokens for n in self.nodes)

    def pick(self) -> Node | None:
        return next((n for n in self.nodes if n.picked), None)

    def as_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "final_scorer": self.final_scorer,
            "tokens": self.tokens,
            "nodes": [{**asdict(n), "status": n.status} for n in self.nodes],
        }
