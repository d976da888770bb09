"""Agents: a model plus a planner plus an objective."""

from forethought.agents.mpc import MPCAgent

__all__ = ["MPCAgent"]
