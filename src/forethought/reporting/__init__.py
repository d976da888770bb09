"""What a person sees of a run: the live progress display, summary tables and plots."""

from forethought.reporting.plots import plot_learning_curve
from forethought.reporting.progress import RunProgress
from forethought.reporting.tables import summary_table

__all__ = ["RunProgress", "plot_learning_curve", "summary_table"]
