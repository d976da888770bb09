"""Trajectory optimisers behind one contract: `objective(B x P x H x A) -> B x P`."""

from forethought.planners.base import (
    Objective,
    Planner,
    PlannerConfig,
    PlannerName,
    PlanResult,
    shift_plan,
)
from forethought.planners.cem import CEM, RandomShooting
from forethought.planners.icem import ICEM, colored_noise
from forethought.planners.mppi import MPPI

PLANNERS: dict[str, type[Planner]] = {
    "random": RandomShooting,
    "cem": CEM,
    "icem": ICEM,
    "mppi": MPPI,
}


def make_planner(name: str, config: PlannerConfig, lower, upper) -> Planner:
    """Build a planner by name ("random", "cem", "icem", "mppi")."""
    from forethought.errors import ConfigError

    if name not in PLANNERS:
        raise ConfigError("planner", f"unknown planner '{name}'; choose one of {sorted(PLANNERS)}")
    return PLANNERS[name](config, lower, upper)


__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "PLANNERS",
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
