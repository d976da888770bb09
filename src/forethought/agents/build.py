"""An agent assembled from a run's configuration: task knowledge, a fresh dynamics model and
the planner (MPC with a trajectory optimiser, or tree search), for the training loop and for
the tools that reload a run."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym

from forethought.agents.guided import GuidedMPCAgent, PolicyPrior
from forethought.agents.mpc import MPCAgent
from forethought.agents.tree import TreeSearchAgent
from forethought.config import TrainConfig
from forethought.models import DynamicsModel
from forethought.models.value import StateValue
from forethought.planners import make_planner
from forethought.tasks import TaskSpec, get_task

PlanningAgent = MPCAgent | TreeSearchAgent  # GuidedMPCAgent is an MPCAgent


def build_mpc_agent(
    config: TrainConfig, env: gym.Env, prior: PolicyPrior | None = None, training: bool = False
) -> tuple[TaskSpec, DynamicsModel, PlanningAgent]:
    """The task spec, a fresh dynamics model and the agent that plans with it (the one that
    collects training episodes, with `training`); reward and termination heads are learned
    only where the task has no known function. `env` acts on vectors (a Discrete environment
    behind `OneHotActions`)."""
    task = get_task(config.env)
    model = dynamics_model(config, env)
    state_value = make_state_value(config, model.obs_dim)
    agent = planning_agent(config, env, model, task, config.seed, state_value, prior, training)
    return task, model, agent


def dynamics_model(config: TrainConfig, env: gym.Env) -> DynamicsModel:
    """A fresh dynamics model for `env`, with reward and termination heads only where the task
    has no known function."""
    task = get_task(config.env)
    return DynamicsModel(
        env.observation_space.shape[0],
        env.action_space.shape[0],
        config.model,
        learn_reward=task.reward_fn is None,
        learn_termination=task.termination_fn is None,
    ).to(config.device)


def make_state_value(config: TrainConfig, obs_dim: int) -> StateValue | None:
    """The learned state value at the leaves of tree search, or at the horizon of --algo loop's
    plans with --loop.value behaviour and of other plans with --value.at-horizon, where the
    run uses one."""
    if config.algo == "loop":
        used = config.loop.terminal_value and config.loop.value == "behaviour"
    elif config.planner == "mcts":
        used = config.value.enabled
    else:
        used = config.value.at_horizon
    return StateValue(obs_dim, config.value).to(config.device) if used else None


def planning_agent(
    config: TrainConfig,
    env: gym.Env,
    model: DynamicsModel,
    task: TaskSpec,
    seed: int,
    state_value: StateValue | None = None,
    prior: PolicyPrior | None = None,
    training: bool = False,
) -> PlanningAgent:
    """The configured planner around `model` (and the learned value, for tree search; the
    actor and critic that guide it, for --algo loop), with its own random stream from `seed`;
    `training`: it collects training episodes (--loop.anchor-sampled applies there only)."""
    if config.planner == "mcts":
        return TreeSearchAgent(
            model, task, config.mcts, device=config.device, seed=seed, state_value=state_value
        )
    planner = make_planner(
        config.planner, config.planning, env.action_space.low, env.action_space.high
    )
    if prior is not None:  # --algo loop: the actor proposes, the critic values the horizon
        loop = config.loop
        return GuidedMPCAgent(
            model,
            planner,
            task,
            replace(config.rollout, discount=loop.gamma),
            device=config.device,
            seed=seed,
            safety=config.safety,
            prior=prior,
            state_value=state_value,
            proposals=loop.proposals,
            anchor=loop.anchor,
            sampled_anchor=training and loop.anchor_sampled,
            bootstrap=loop.terminal_value,
            pessimistic=loop.pessimistic_value,
            untrusted_rollout=config.rollout,  # a gated value left out: plain MPC's objective
        )
    return MPCAgent(
        model,
        planner,
        task,
        config.rollout,
        device=config.device,
        seed=seed,
        safety=config.safety,
        state_value=state_value,
    )
