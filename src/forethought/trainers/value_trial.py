"""A trial of the value at the horizon in the model (--value.trial-steps): does planning with
it go better than planning without it?

A value fitted on a few episodes can be right about the states the planner visited and still
lead it astray: on Pendulum-v1 it rated a fast pass over the top like standing there, and
the planner that used it kept pendulums spinning that plain MPC held up. Its fit to the logged
returns cannot show that; the planner's own course can. So after every fit the planner runs
closed-loop in the learned model from logged states twice, once with the value at its
horizon and once without, from the same starts with the same random draws; the value is
used in the real episodes only while it does not lower that imagined return.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from forethought.agents.build import planning_agent
from forethought.agents.mpc import MPCAgent
from forethought.models.dynamics import DynamicsModel
from forethought.models.value import StateValue
from forethought.rollout import imagine_policy
from forethought.tasks.base import TaskSpec
from forethought.trainers.imagined_value import imagined_returns
from forethought.types import TransitionBatch


def fit_run_value(run, data: TransitionBatch[np.ndarray]) -> None:
    """After a model fit of `run` (a trainers.pets.Run): fit its state value on `data` (and on
    imagined rollouts, with --value.imagined-horizon), then, with --value.trial-steps, try it
    in the model."""
    config, value = run.config.value, run.value.value
    imagined = None
    prior = getattr(run.agent, "prior", None)  # --algo loop: SAC's actor; else a distilled one
    if config.imagined_horizon > 0:  # at the value's own discount (--mcts.adaptive-horizon)
        imagined = imagined_returns(
            run.model, run.task, value, data, config.imagined_horizon, run.value.discount,
            run.value.stream(run.rng), None if prior is None else prior.sample,
        )  # fmt: skip
    run.value.fit(data, run.value.stream(run.rng), imagined)
    if config.trial_steps == 0:
        return
    gain, rows = planning_gain(
        lambda seed: planning_agent(run.config, run.env, run.model, run.task, seed, value, prior),
        run.model, run.task, value, data, config.trial_steps, config.trial_starts,
        [run.config.seed, 3, len(data)],
    )  # fmt: skip
    run.agent.compute.model_rows += rows
    value.trial_gain.fill_(gain)
    value.trusted.fill_(bool(config.trust is None or value.trusted) and gain >= 0)


def planning_gain(
    make_agent: Callable[[int], MPCAgent],
    model: DynamicsModel,
    task: TaskSpec,
    value: StateValue,
    data: TransitionBatch[np.ndarray],
    steps: int,
    starts: int,
    seed: int | list[int],
) -> tuple[float, int]:
    """Mean undiscounted imagined return of `steps` steps of closed-loop planning from
    `starts` logged states (rounded to whole blocks per ensemble member, each block moved
    by its member) with the value at the horizon, minus the same without it; and the model
    rows both trials cost. `make_agent(seed)` builds a fresh planner around `value` with its
    random stream from `seed` (the same seed for both trials). `value.trusted` is left as it was."""
    rng = np.random.default_rng(seed)
    e = model.ensemble_size
    count = max(starts // e, 1) * e
    device = value.obs_mean.device
    chosen = rng.choice(len(data), count, replace=count > len(data))
    start_states = torch.as_tensor(data.obs[chosen], dtype=torch.float32, device=device)
    generator_seed, agent_seed = (int(x) for x in rng.integers(2**62, size=2))
    was_trusted, returns, rows = value.trusted.clone(), [], 0
    for use_value in (True, False):
        value.trusted.fill_(use_value)
        agent = make_agent(agent_seed)

        def act(state: torch.Tensor, generator: torch.Generator, agent=agent) -> torch.Tensor:
            flat = state.reshape(-1, state.shape[-1]).cpu().numpy()
            action = torch.as_tensor(agent.act(flat), device=state.device)
            return action.view(*state.shape[:-1], -1)

        rollouts = imagine_policy(
            model, start_states.view(e, count // e, -1), act, steps, 1.0, task.reward_fn,
            task.termination_fn, lambda s: s.new_zeros(s.shape[:-1]),
            torch.Generator(device).manual_seed(generator_seed),
        )  # fmt: skip
        # Every start is alive at step 0, so the first `count` returns are the starts'.
        returns.append(float(rollouts.returns[:count].mean()))
        rows += rollouts.model_rows + agent.compute.model_rows
    value.trusted.copy_(was_trusted)
    return returns[0] - returns[1], rows
