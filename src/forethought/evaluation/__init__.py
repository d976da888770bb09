"""Evaluation: running policies on fixed seeds, plots and summary tables."""

from forethought.evaluation.episodes import evaluate_batched, run_episode
from forethought.evaluation.plots import plot_learning_curve
from forethought.evaluation.report import summary_table

__all__ = ["evaluate_batched", "plot_learning_curve", "run_episode", "summary_table"]
