"""Planners. The trajectory optimisers share one contract, `objective(B x P x H x A) -> B x P`
(discrete-cem too, with one-hot actions); tree search (mcts) steps a simulator instead."""

from forethought.planners.base import (
    Objective,
    Planner,
    PlannerConfig,
    PlannerName,
    PlanResult,
    shift_plan,
)
from forethought.planners.cem import CEM, RandomShooting
from forethought.planners.discrete_cem import DiscreteCEM
from forethought.planners.icem import ICEM, colored_noise
from forethought.planners.mppi import MPPI

PLANNERS: dict[str, type[Planner]] = {
    "random": RandomShooting,
    "cem": CEM,
    "icem": ICEM,
    "mppi": MPPI,
    "discrete-cem": DiscreteCEM,
}
DISCRETE_PLANNERS = ("mcts", "discrete-cem")  # the rest act in Box action spaces


def make_planner(name: str, config: PlannerConfig, lower, upper) -> Planner:
    """Build a trajectory optimiser by name (one of `PLANNERS`; mcts is built by the agent)."""
    from forethought.errors import ConfigError

    if name not in PLANNERS:
        raise ConfigError("planner", f"unknown planner '{name}'; choose one of {sorted(PLANNERS)}")
    return PLANNERS[name](config, lower, upper)


__all__ = [
    "CEM",
    "DISCRETE_PLANNERS",
    "ICEM",
    "MPPI",
    "PLANNERS",
    "DiscreteCEM",
    "Objective",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "PlannerName",
    "RandomShooting",
    "colored_noise",
    "make_planner",
    "shift_plan",
]
