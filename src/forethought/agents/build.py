"""An MPC agent assembled from a run's configuration: task knowledge, a fresh dynamics model and
the planner, for the training loop and for the tools that reload a run."""

from __future__ import annotations

import gymnasium as gym

from forethought.agents.mpc import MPCAgent
from forethought.config import TrainConfig
from forethought.models import DynamicsModel
from forethought.planners import make_planner
from forethought.tasks import TaskSpec, get_task


def build_mpc_agent(config: TrainConfig, env: gym.Env) -> tuple[TaskSpec, DynamicsModel, MPCAgent]:
    """The task spec, a fresh dynamics model and the MPC agent that plans with it; reward and
    termination heads are learned only where the task has no known function."""
    task = get_task(config.env)
    model = DynamicsModel(
        env.observation_space.shape[0],
        env.action_space.shape[0],
        config.model,
        learn_reward=task.reward_fn is None,
        learn_termination=task.termination_fn is None,
    ).to(config.device)
    planner = make_planner(
        config.planner, config.planning, env.action_space.low, env.action_space.high
    )
    agent = MPCAgent(
        model,
        planner,
        task,
        config.rollout,
        device=config.device,
        seed=config.seed,
        safety=config.safety,
    )
    return task, model, agent
