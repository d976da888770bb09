"""The language track: a generator, scorers (reward models, verifiers, value predictors on
prefixes) and search over outputs under an exactly counted budget.

Importing this package pulls in transformers; install the `lm` extra (`pip install
forethought[lm]`).
"""

from forethought.lm.budget import Account, Budget, BudgetExceeded, Spend
from forethought.lm.generator import Candidate, Generator
from forethought.lm.rewards import ClassifierReward, FunctionReward, Scorer
from forethought.lm.search import (
    SearchResult,
    beam_search,
    best_of_n,
    dvts,
    lookahead,
    mcts,
    prune,
    sample_then_search,
)

__all__ = [
    "Account",
    "Budget",
    "BudgetExceeded",
    "Candidate",
    "ClassifierReward",
    "FunctionReward",
    "Generator",
    "Scorer",
    "SearchResult",
    "Spend",
    "beam_search",
    "best_of_n",
    "dvts",
    "lookahead",
    "mcts",
    "prune",
    "sample_then_search",
]
