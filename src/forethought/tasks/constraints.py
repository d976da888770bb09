"""Constrained tasks (CMDPs): a per-step cost next to the reward.

Each constraint has two independent readings of the same rule:

- `cost_fn(obs, action, next_obs)` in torch, on observations, for the planner to evaluate on
  imagined states (any leading shape);
- `CostWrapper`, which reads the environment's own internal state after each real step and puts
  the cost in `info["cost"]` (what the run counts as a violation).

Tests check that the two agree on real transitions, so the planner vetoes exactly what the
environment would count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.errors import ConfigError, require
from forethought.rollout import CostFn
from forethought.tasks.cartpole import CARTPOLE_ID

PENDULUM_SPEED_LIMIT = 6.0  # rad/s; Pendulum-v1 itself clips the speed at 8
PENDULUM_ZONE = (0.6, 1.6)  # rad from upright, on the positive side: swing up the other way
CARTPOLE_POSITION_LIMIT = 1.0  # m; the continuous cart-pole terminates at 2.4
CHEETAH_VELOCITY_LIMIT = 3.2096  # m/s: Safety-Gymnasium's HalfCheetah velocity task
CHEETAH_VELOCITY = 8  # index of the forward velocity (qvel[0]) in HalfCheetah-v5's observation


@dataclass(frozen=True)
class Constraint:
    env_id: str
    description: str
    cost_fn: CostFn  # torch, on observations: 1.0 where the next state violates the rule
    env_cost: Callable[[gym.Env], float]  # numpy, on the env's internal state after a step


def _pendulum_speed(obs, action, next_obs):
    return (next_obs[..., 2].abs() > PENDULUM_SPEED_LIMIT).to(next_obs.dtype)


def _pendulum_zone(obs, action, next_obs):
    theta = torch.atan2(next_obs[..., 1], next_obs[..., 0])
    low, high = PENDULUM_ZONE
    return ((theta >= low) & (theta <= high)).to(next_obs.dtype)


def _cartpole_position(obs, action, next_obs):
    return (next_obs[..., 0].abs() > CARTPOLE_POSITION_LIMIT).to(next_obs.dtype)


def _cheetah_velocity(obs, action, next_obs):
    return (next_obs[..., CHEETAH_VELOCITY] > CHEETAH_VELOCITY_LIMIT).to(next_obs.dtype)


def _wrapped_angle(theta: float) -> float:
    return (theta + math.pi) % (2 * math.pi) - math.pi


CONSTRAINTS: dict[str, Constraint] = {
    "pendulum-speed": Constraint(
        "Pendulum-v1",
        f"angular speed above {PENDULUM_SPEED_LIMIT} rad/s",
        _pendulum_speed,
        lambda env: float(abs(env.unwrapped.state[1]) > PENDULUM_SPEED_LIMIT),
    ),
    "pendulum-zone": Constraint(
        "Pendulum-v1",
        f"angle in the forbidden zone {PENDULUM_ZONE} rad from upright",
        _pendulum_zone,
        lambda env: float(
            PENDULUM_ZONE[0] <= _wrapped_angle(env.unwrapped.state[0]) <= PENDULUM_ZONE[1]
        ),
    ),
    "cartpole-position": Constraint(
        CARTPOLE_ID,
        f"cart further than {CARTPOLE_POSITION_LIMIT} m from the centre",
        _cartpole_position,
        lambda env: float(abs(env.unwrapped.state[0]) > CARTPOLE_POSITION_LIMIT),
    ),
    "cheetah-velocity": Constraint(
        "HalfCheetah-v5",
        f"forward velocity above {CHEETAH_VELOCITY_LIMIT} m/s",
        _cheetah_velocity,
        lambda env: float(env.unwrapped.data.qvel[0] > CHEETAH_VELOCITY_LIMIT),
    ),
}


@dataclass(frozen=True)
class SafetyConfig:
    """Constraints that veto imagined plans (chance-constrained MPC)."""

    constraint: str | None = None
    """Cost signal to respect: pendulum-speed, pendulum-zone, cartpole-position or cheetah-velocity (None: no constraint)."""
    veto: bool = True
    """Plan under the constraint; --safety.no-veto only measures its cost (the unconstrained baseline on the same constrained task)."""
    plan_cost_limit: float = 0.0
    """Cost a plan may incur over the planning horizon (0: no violating step at all)."""
    delta: float = 0.1
    """A candidate plan is vetoed when the fraction of its particles (members and samples) whose imagined cost exceeds the limit is above this; 0 vetoes on the worst particle (pessimistic)."""
    fallback: str = "least-violating"
    """When every candidate is vetoed: least-violating (execute the candidate with the smallest expected cost) or zero (a zero action, clipped to the bounds)."""
    lagrangian: bool = False
    """Model-free algorithms (sac, td3, ppo): learn from reward - lambda x cost, lambda raised after each training episode by --safety.lagrange-lr x (episode cost - --safety.cost-limit), never below 0 (the Lagrangian answer to a cost limit; the planner vetoes instead)."""
    cost_limit: float = 0.0
    """Cost an episode may incur under --safety.lagrangian (0: no violating step)."""
    lagrange_lr: float = 0.05
    """Step size of the multiplier's update under --safety.lagrangian (per unit of episode cost above the limit)."""
    shield: bool = False
    """MBPO: once the ensemble is first fitted, every action SAC takes in the real environment (exploration included) passes a shield: it and the policy's next --safety.shield-lookahead actions are imagined with the ensemble, and where they would break the constraint the constrained planner (--planner, --planning.*) acts instead; the executed action is the one stored, evaluations are of the shielded policy, and every override is logged in RUN_DIR/shield.jsonl."""
    shield_lookahead: int = 20
    """Steps the shield imagines before each action; they must reach past the point where the constraint can no longer be kept."""

    def validate(self, env_id: str) -> None:
        if self.constraint is None:
            return
        require(
            self.constraint in CONSTRAINTS,
            "safety.constraint",
            f"unknown constraint '{self.constraint}'; choose from {', '.join(CONSTRAINTS)}",
        )
        wanted = CONSTRAINTS[self.constraint].env_id
        if wanted != env_id:
            raise ConfigError(
                "safety.constraint", f"'{self.constraint}' is defined for {wanted}, not {env_id}"
            )
        require(self.plan_cost_limit >= 0, "safety.plan_cost_limit", "must be 0 or more")
        require(0.0 <= self.delta < 1.0, "safety.delta", "must be in [0, 1)")
        require(
            self.fallback in ("least-violating", "zero"),
            "safety.fallback",
            "must be least-violating or zero",
        )
        require(self.cost_limit >= 0, "safety.cost_limit", "must be 0 or more")
        require(self.lagrange_lr > 0, "safety.lagrange_lr", "must be above 0")
        require(self.shield_lookahead >= 1, "safety.shield_lookahead", "must be at least 1")


class CostWrapper(gym.Wrapper):
    """Adds `info["cost"]` (from the environment's own state) to every step."""

    def __init__(self, env: gym.Env, constraint: Constraint):
        super().__init__(env)
        self.constraint = constraint

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "cost": self.constraint.env_cost(self.env)}
        return obs, reward, terminated, truncated, info


class LagrangianPenalty(gym.Wrapper):
    """The reward a model-free learner sees under a cost limit: reward - lambda x info["cost"].
    After each episode, lambda += lr x (episode cost - limit), floored at 0: dual ascent on
    the constrained objective, one step per episode. The multiplier is the wrapper's state, so
    a run's environment snapshot carries it across a resume; `info["lagrange_multiplier"]` shows
    it. Wrap it around the Monitor: the Monitor then records the task's own return."""

    def __init__(self, env: gym.Env, cost_limit: float, lr: float):
        super().__init__(env)
        self.cost_limit, self.lr = cost_limit, lr
        self.multiplier, self.episode_cost = 0.0, 0.0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = float(info.get("cost", 0.0))
        penalised = float(reward) - self.multiplier * cost
        self.episode_cost += cost
        if terminated or truncated:
            excess = self.episode_cost - self.cost_limit
            self.multiplier = max(0.0, self.multiplier + self.lr * excess)
            self.episode_cost = 0.0
        return (
            obs,
            penalised,
            terminated,
            truncated,
            {**info, "lagrange_multiplier": self.multiplier},
        )

    def reset(self, **kwargs):
        self.episode_cost = 0.0
        return self.env.reset(**kwargs)


def with_costs(env: gym.Env, config: SafetyConfig) -> gym.Env:
    """`env` with its constraint's cost in `info["cost"]`, or `env` itself without one."""
    if config.constraint is None:
        return env
    return CostWrapper(env, CONSTRAINTS[config.constraint])
