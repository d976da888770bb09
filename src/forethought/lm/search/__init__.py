"""Search strategies over text, each taking a budget and returning a `SearchResult`."""

from forethought.lm.search.beam import beam_search, dvts
from forethought.lm.search.bon import best_of_n
from forethought.lm.search.common import SearchResult, rank_mean, vote
from forethought.lm.search.mixed import sample_then_search
from forethought.lm.search.staged import Schedule, lookahead, prune, staged_search
from forethought.lm.search.step_tree import StepTree, mcts
from forethought.lm.search.trace import NO_TRACE, Node, NullTrace, Trace

__all__ = [
    "NO_TRACE",
    "Node",
    "NullTrace",
    "Schedule",
    "SearchResult",
    "StepTree",
    "Trace",
    "beam_search",
    "best_of_n",
    "dvts",
    "lookahead",
    "mcts",
    "prune",
    "rank_mean",
    "sample_then_search",
    "staged_search",
    "vote",
]
