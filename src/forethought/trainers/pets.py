"""The model-based control loop (PETS-style MPC), top to bottom:

    warm up: act at random for `warmup_episodes`, logging every transition
    for each episode:
        collect   one episode with the current policy (random, then MPC), every transition
                  appended to the crash-safe log before the next action is chosen
        fit       the dynamics ensemble on its training data, when `Adaptation` says so
        evaluate  the MPC agent on fixed evaluation seeds (all episodes in one batch)
        record    a metrics row, a checkpoint, the learning-curve plot

With `--algo loop` an actor-critic (trainers/actor_critic.py) learns from every transition as it
is collected; the planner adds a learned value at the end of each imagined plan (by default
the planner's own state value, refitted with the model; optionally SAC's critic) and considers
the actor's plans among the candidates. With `--loop.imagined-ratio` each fit also branches
short rollouts of the actor in the model for SAC to learn from (MBPO's data).

While acting, `Adaptation` (trainers/adaptation.py) may ask for a refit mid-episode when the
model has drifted; this loop carries the refit out.

`start` runs a new run; `resume` continues a killed one from its last checkpoint (taken at each
episode's end). An episode the kill interrupted is replayed from its start with the same reset
seed and random state, so the resumed run ends exactly as the uninterrupted one would; the
interrupted attempt stays in the append-only log, listed as abandoned (`--on-resume keep`
counts it instead, for systems that cannot be replayed).
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console

from forethought.agents.build import PlanningAgent, build_mpc_agent, planning_agent
from forethought.agents.guided import PolicyPrior
from forethought.agents.tree import TreeSearchAgent
from forethought.config import TrainConfig
from forethought.data import ReplayBuffer, TransitionLog
from forethought.errors import ConfigError, DataError
from forethought.models import DynamicsModel, FitReport, ModelTrainer
from forethought.models.value import ValueTrainer, episode_discount
from forethought.reporting import RunProgress, plot_learning_curve, summary_table
from forethought.runtime import configure_cpu
from forethought.storage import read_metrics, restore_rng_states, rng_states
from forethought.tasks import (
    TaskSpec,
    check_env,
    check_spaces,
    is_discrete,
    make_env,
    one_hot,
    vector_actions,
)
from forethought.tasks.constraints import with_costs
from forethought.tasks.drift import DynamicsDrift
from forethought.tasks.episodes import EpisodeResult, evaluate_batched, run_episode
from forethought.trainers.actor_critic import ActorCritic
from forethought.trainers.adaptation import Adaptation
from forethought.trainers.mbpo import MixedReplayBuffer
from forethought.trainers.run_dir import Progress, RunDir, RunResult
from forethought.trainers.value_trial import fit_run_value

TRAIN_SEED_STRIDE = 10_000  # training episode i of seed s resets with s * stride + i


@dataclass
class Run:
    """Everything a run holds in memory."""

    config: TrainConfig
    dir: RunDir
    task: TaskSpec
    env: gym.Env
    eval_envs: list[gym.Env]
    buffer: ReplayBuffer
    log: TransitionLog
    model: DynamicsModel
    trainer: ModelTrainer
    agent: PlanningAgent  # acts in the training episodes
    eval_agent: PlanningAgent  # same model, its own warm starts and RNG, for evaluation episodes
    rng: np.random.Generator
    progress: Progress
    adaptation: Adaptation
    value: ValueTrainer | None  # fits the learned state value (tree search, loop's behaviour value)
    actor_critic: ActorCritic | None  # --algo loop: SAC learning from the planner's transitions


def check(config: TrainConfig) -> None:
    """Everything that can be checked before a run directory is created."""
    check_env(config.env, *config.acting(), **config.make_kwargs())
    if config.explore_std > 0:
        env = make_env(config.env, **config.make_kwargs())
        discrete = is_discrete(env)
        env.close()
        if discrete:
            raise ConfigError("explore_std", "applies to continuous actions only")
    if config.drift.at_step is not None:  # a bad drift parameter fails before the run dir exists
        DynamicsDrift(make_env(config.env, **config.make_kwargs()), config.drift).close()


def start(directory: RunDir, config: TrainConfig, console: Console | None = None) -> RunResult:
    """Carry a new run in `directory` to the end."""
    return _execute(_build(config, directory), console, resumed=None)


def resume(directory: RunDir, config: TrainConfig, console: Console | None = None) -> RunResult:
    """Continue the run in `directory` from its last checkpoint (see the module docstring)."""
    run = _build(config, directory)
    partial = _restore(run)
    return _execute(run, console, resumed=partial)


# -- building and restoring --------------------------------------------------------------------
def _build(config: TrainConfig, directory: RunDir) -> Run:
    """Environment, model, planner and agent for `config`, in their initial state."""
    configure_cpu(config.threads)
    torch.manual_seed(config.seed)
    env = make_env(config.env, seed=config.seed, **config.make_kwargs())
    check_spaces(env, config.env, *config.acting())
    env = vector_actions(with_costs(env, config.safety))  # info["cost"] on constrained tasks
    eval_envs = [
        vector_actions(with_costs(make_env(config.env, **config.make_kwargs()), config.safety))
        for _ in range(config.eval_episodes)
    ]
    if config.drift.at_step is not None:  # evaluations always see the current dynamics
        env = DynamicsDrift(env, config.drift)
        eval_envs = [DynamicsDrift(e, config.drift, clock=env) for e in eval_envs]
    actor_critic = prior = None
    if config.algo == "loop":
        loop = config.loop
        mixed = {
            "replay_buffer_class": MixedReplayBuffer,
            "replay_buffer_kwargs": {"real_ratio": 1.0 - loop.imagined_ratio,
                                     "model_capacity": loop.imagined_capacity()},
        } if loop.imagined_ratio > 0 else {}  # fmt: skip
        actor_critic = ActorCritic(loop, env.observation_space, env.action_space,
                                   config.buffer_capacity, config.seed, config.device, **mixed)  # fmt: skip
        prior = PolicyPrior(actor_critic.sac)
    task, model, agent = build_mpc_agent(config, env, prior, training=True)
    state_value = agent.state_value  # tree search, --algo loop, --value.at-horizon
    return Run(
        config=config,
        dir=directory,
        task=task,
        env=env,
        eval_envs=eval_envs,
        buffer=ReplayBuffer(model.obs_dim, model.action_dim, config.buffer_capacity),
        log=directory.transition_log(model.obs_dim, model.action_dim),
        model=model,
        trainer=ModelTrainer(model, config.fit),
        agent=agent,
        eval_agent=planning_agent(config, env, model, task, config.seed + 1, state_value, prior),
        rng=np.random.default_rng(config.seed),
        progress=Progress(),
        adaptation=Adaptation(config),
        value=None
        if state_value is None
        else ValueTrainer(state_value, config.value, _value_discount(config), config.seed),
        actor_critic=actor_critic,
    )


def _restore(run: Run) -> EpisodeResult | None:
    """Load the last checkpoint, check the log against it, and deal with the records after it
    (the interrupted episode). Returns that episode's result when `--on-resume keep` counts it."""
    checkpoint = run.dir.load_checkpoint()
    if checkpoint is None:
        finished = [r for r in read_metrics(run.dir.metrics_path) if "event" not in r]
        if finished:
            raise DataError(
                f"{run.dir.checkpoint_path} is missing, but {run.dir.metrics_path} records "
                f"{len(finished)} finished episodes; restore the checkpoint or start a new run"
            )
    else:
        _load_checkpoint(run, checkpoint)
    run.dir.rewrite_metrics(run.progress.history)  # rows written after the checkpoint go
    _check_log(run)
    tail_start, tail_end = run.progress.log_records, len(run.log)
    if tail_start == tail_end:
        return None
    episodes, steps, tail = run.log.read(tail_start)
    if (episodes != run.progress.episode).any():
        raise DataError(
            f"{run.log.path} holds records of episode {int(episodes.max())} after the checkpoint "
            f"of episode {run.progress.episode}; the log belongs to another run or was edited"
        )
    event = {
        "event": "resumed",
        "episode": run.progress.episode,
        "env_steps": run.buffer.total_added,
    }
    last_attempt = int(np.flatnonzero(steps == 0)[-1]) if (steps == 0).any() else 0
    if run.config.on_resume == "replay":
        run.progress.abandoned.append((tail_start, tail_end))
        event.update(on_resume="replay", abandoned_records=[tail_start, tail_end])
        _record(run, event)
        return None
    # keep: earlier attempts (replays killed again) are abandoned, the latest one is counted.
    if last_attempt:
        run.progress.abandoned.append((tail_start, tail_start + last_attempt))
    kept = tail[last_attempt:]
    run.buffer.add_batch(kept)
    run.progress.env_steps = run.buffer.total_added
    _sync_drift_clock(run)
    event.update(on_resume="keep", kept_records=[tail_start + last_attempt, tail_end])
    _record(run, event)
    return EpisodeResult(float(kept.reward.sum()), len(kept), [])


def _load_checkpoint(run: Run, checkpoint: dict[str, Any]) -> None:
    try:
        run.model.load_state_dict(checkpoint["model"])
        run.trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        run.buffer = ReplayBuffer.from_state_dict(checkpoint["buffer"])
        restore_rng_states(checkpoint["rng"], run.rng, _generators(run))
        run.progress = Progress.from_state_dict(checkpoint["progress"])
        run.adaptation.load_state_dict(checkpoint["adaptation"])
        run.agent.compute.model_rows = checkpoint["model_rows"]
        if run.value is not None:
            run.value.value.load_state_dict(checkpoint["value"])
            run.value.load_state_dict(checkpoint)
        if "tree_discount" in checkpoint:
            _set_tree_discount(run, checkpoint["tree_discount"])
        if run.actor_critic is not None:
            run.actor_critic.load_state_dict(checkpoint["actor_critic"])
            run.actor_critic.refill(run.buffer.all())
    except (KeyError, RuntimeError, ValueError) as err:
        raise DataError(
            f"{run.dir.checkpoint_path} does not fit this run's configuration or this forethought "
            f"version ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "start a new run"
        ) from None
    _sync_drift_clock(run)


def _check_log(run: Run) -> None:
    """The log must hold every record the checkpoint counted, and end with the buffer's rows."""
    counted, records = run.progress.log_records, len(run.log)
    if records < counted:
        raise DataError(
            f"{run.log.path} holds {records} transitions, but the checkpoint was taken after "
            f"{counted}; the log was truncated, replaced or deleted: restore it or start a new run"
        )
    run.log.check()
    committed = run.log.committed(run.progress.abandoned, counted)
    stored = run.buffer.all()
    if len(committed) != run.buffer.total_added or not all(
        np.array_equal(
            getattr(committed[len(committed) - len(stored) :], name), getattr(stored, name)
        )
        for name in ("obs", "action", "reward", "next_obs")
    ):
        raise DataError(
            f"{run.log.path} does not match {run.dir.checkpoint_path} (its {len(committed)} "
            f"counted records differ from the {run.buffer.total_added} transitions of the "
            "checkpoint's buffer); the two come from different runs: restore the pair or start a "
            "new run"
        )


def _sync_drift_clock(run: Run) -> None:
    if isinstance(run.env, DynamicsDrift):  # the drift clock counts every counted step
        run.env.total_steps = run.progress.env_steps
        run.env.step_clock_changed()


# -- the loop ----------------------------------------------------------------------------------
def _execute(run: Run, console: Console | None, resumed: EpisodeResult | None) -> RunResult:
    config, progress = run.config, run.progress
    if console is None or config.quiet:
        console = Console(quiet=config.quiet)
    steps_per_episode = run.env.spec.max_episode_steps if run.env.spec else None
    limit = config.episode_limit
    total_steps = limit * steps_per_episode if limit and steps_per_episode else None
    if config.steps is not None:
        total_steps = min(total_steps or config.steps, config.steps)

    with RunProgress(console, config, total_steps, progress.env_steps) as bar:
        episodes = (
            itertools.count(progress.episode) if limit is None else range(progress.episode, limit)
        )
        for episode in episodes:
            if resumed is not None:  # --on-resume keep: the interrupted episode counts as is
                result, resumed = resumed, None
            elif config.steps is not None and progress.env_steps >= config.steps:
                break  # the step budget is spent
            elif config.reached_stop_return(progress.history):
                break  # --stop-at-return: solved
            else:
                result = _collect(run, episode, bar)  # act in the real environment
            report = _fit_if_due(run, episode, bar)  # learn the model
            evaluation = None
            if _evaluation_due(config, episode, progress.env_steps):
                bar.status("evaluating")
                evaluation = _evaluate(run)  # plan with the model on fixed seeds
            _finish_episode(run, _episode_row(run, episode, result, report, evaluation), bar)

    title = _title(config)
    console.print(summary_table(progress.history, title))
    if config.reached_stop_return(progress.history):
        console.print(f"stopped: the evaluation reached --stop-at-return {config.stop_at_return:g}")
    console.print(f"run directory: {run.dir.path}\nlearning curve: {run.dir.plot_path}")
    run.log.close()
    return RunResult(run.dir.path, progress.history, run.dir.plot_path)


def _collect(run: Run, episode: int, bar: RunProgress) -> EpisodeResult:
    """One training episode, random during warm-up and MPC after; every transition is logged
    and added to the buffer before the next action is chosen."""
    config = run.config
    warming_up = episode < config.warmup_episodes
    low, high = run.env.action_space.low, run.env.action_space.high
    discrete = is_discrete(run.env)

    def random_policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if discrete:
            return one_hot(run.rng.integers(len(low), size=len(obs)), len(low))
        return run.rng.uniform(low, high, size=(len(obs), len(low))).astype(np.float32)

    def on_step(t, obs, action, reward, next_obs, terminated, truncated):
        run.log.append(episode, t, obs, action, reward, next_obs, terminated, truncated)
        run.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        if run.actor_critic is not None:  # learns off-policy from what the planner does
            run.actor_critic.observe(obs, action, reward, next_obs, terminated, truncated)
        bar.advance_step()
        step = run.buffer.total_added
        if config.monitor.enabled and not warming_up:
            alarm = run.adaptation.watch(run.model, (obs, action, reward, next_obs), step, episode)
            if alarm is not None:
                if alarm.refit_now:
                    bar.status("model drifted: refitting")
                    report = _fit(run)
                    alarm.event.update(
                        refit=True,
                        new_holdout_surprise=report.holdout_surprise,
                        fit_seconds=report.seconds,
                    )
                _record(run, alarm.event)
        if run.adaptation.forgetting_refit_due(step):
            _refit_after_forgetting(run, episode, bar)
        if config.eval_every_steps and step % config.eval_every_steps == 0:
            if not ((terminated or truncated) and _evaluation_due(config, episode, step)):
                _evaluate_between(run, episode, bar)
            # else the episode-end evaluation, after this episode's fit, stands for this step:
            # two evaluations at one step would give a threshold two chances to be crossed

    run.agent.reset()
    run.agent.plan_disagreement.clear()
    run.agent.plan_cost.clear()
    run.agent.vetoed_steps = 0
    run.adaptation.start_episode()
    bar.start_episode(episode)
    seed = TRAIN_SEED_STRIDE * config.seed + episode
    policy = random_policy if warming_up else _exploring(run, run.agent.act)
    result = run_episode(run.env, policy, seed, on_step, run.buffer.total_added)
    run.progress.env_steps = run.buffer.total_added
    return result


def _exploring(run: Run, act):
    """The planner's action with --explore-std's Gaussian noise (from the run's generator, so a
    resumed run draws the same) added and clipped to the bounds; `act` itself without it."""
    std = run.config.explore_std
    if std == 0:
        return act
    low, high = run.env.action_space.low, run.env.action_space.high

    def noisy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        action = act(obs, rows)
        noise = run.rng.normal(0.0, std, size=action.shape) * (high - low)
        return np.clip(action + noise, low, high).astype(action.dtype)

    return noisy


def _fit_if_due(run: Run, episode: int, bar: RunProgress) -> FitReport | None:
    due, from_scratch = run.adaptation.fit_due(episode)
    if not due:
        return None
    bar.status("fitting model")
    return _fit(run, from_scratch=from_scratch)


def _fit(run: Run, from_scratch: bool = False) -> FitReport:
    """Fit the model on its training data (everything since the adaptation's `fit_from`).
    `from_scratch` first forgets the weights too (after a change of dynamics they encode the
    old ones)."""
    if from_scratch:
        run.trainer.restart()
    step = run.buffer.total_added
    data = run.buffer.since(run.adaptation.fit_from)
    keep = run.adaptation.keep_normalization(len(data), step)
    report = run.trainer.fit(data, run.rng, keep_normalization=keep)
    run.adaptation.fitted(report.holdout_surprise, step)
    if run.config.planner == "mcts" and run.config.mcts.adaptive_horizon > 0:
        mcts = run.config.mcts
        _set_tree_discount(run, episode_discount(data, mcts.discount, mcts.adaptive_horizon))
    if run.value is not None:  # the value of states, on the same data as the model
        fit_run_value(run, data)
    loop = run.config.loop
    if run.actor_critic is not None and loop.imagined_ratio > 0:  # MBPO's data for SAC
        run.actor_critic.imagine(run.model, run.task, data.obs, loop.branches, loop.branch_length)
    return report


def _set_tree_discount(run: Run, discount: float) -> None:
    for agent in (run.agent, run.eval_agent):
        agent.set_discount(discount)
    if run.value is not None:
        run.value.discount = discount


def _refit_after_forgetting(run: Run, episode: int, bar: RunProgress) -> None:
    """The refit an alarm with forgetting scheduled, once enough new transitions exist."""
    bar.status("model drifted: refitting on the new data")
    report = _fit(run, from_scratch=True)
    step = run.buffer.total_added
    event = {
        "event": "refit_after_forgetting",
        "episode": episode,
        "step": step,
        "transitions": step - run.adaptation.fit_from,
        "new_holdout_surprise": report.holdout_surprise,
        "fit_seconds": report.seconds,
    }
    _record(run, event)


def _evaluation_due(config: TrainConfig, episode: int, env_steps: int) -> bool:
    last = episode + 1 == config.episode_limit or (
        config.steps is not None and env_steps >= config.steps
    )
    return (episode + 1) % config.eval_every == 0 or last


def _evaluate(run: Run) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    """Returns and constraint costs of the evaluation episodes (fixed seeds, one batch), the
    CPU seconds they took (measuring is not learning, so a benchmark can take it out of the
    run's CPU time), and with --algo loop the returns of its actor alone on the same seeds:
    the control that tells what the planner adds to the policy it learns beside."""
    config = run.config
    start = time.process_time()
    run.eval_agent.reset()
    seeds = [config.eval_seed + j for j in range(config.eval_episodes)]
    costs = np.zeros(len(seeds))
    returns = evaluate_batched(run.eval_envs, run.eval_agent.act, seeds, costs)
    actor = None
    if run.actor_critic is not None:  # deterministic actions: no random stream is touched
        actor = evaluate_batched(run.eval_envs, run.actor_critic.act, seeds)
    return returns, costs, time.process_time() - start, actor


def _evaluate_between(run: Run, episode: int, bar: RunProgress) -> None:
    """An evaluation on the step schedule (`eval_every_steps`), recorded as an event row."""
    bar.status("evaluating")
    returns, costs, cpu_seconds, actor = _evaluate(run)
    event = {
        "event": "evaluation",
        "episode": episode,
        "env_steps": run.buffer.total_added,
        "eval_return": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_returns": returns.tolist(),
        "eval_cpu_seconds": cpu_seconds,
    }
    if actor is not None:
        event["eval_actor_return"] = float(actor.mean())
    if run.config.safety.constraint is not None:
        event.update(eval_cost=float(costs.mean()), eval_costs=costs.tolist())
    _record(run, event)
    bar.status("acting")


# -- recording ---------------------------------------------------------------------------------
def _episode_row(run, episode, result, report, evaluation) -> dict[str, Any]:
    warming_up = episode < run.config.warmup_episodes
    disagreement = run.agent.plan_disagreement
    eval_returns, eval_costs, eval_cpu, actor = (None,) * 4 if evaluation is None else evaluation

    def stat(values, fn):
        return None if values is None or len(values) == 0 else float(fn(values))

    row = {
        "episode": episode,
        "policy": "random" if warming_up else _policy_name(run.config),
        "env_steps": run.progress.env_steps,
        "return": result.episode_return,
        "eval_return": stat(eval_returns, np.mean),
        "eval_return_std": stat(eval_returns, np.std),
        "eval_returns": None if eval_returns is None else eval_returns.tolist(),
        "eval_cpu_seconds": eval_cpu,
        "holdout_error": None if report is None else report.holdout_error,
        "fit_seconds": None if report is None else report.seconds,
        "fit_epochs": None if report is None else report.epochs,
        "drift_alarms": run.adaptation.alarms_this_episode,
        "plan_disagreement": stat(disagreement, statistics.median),
        "ms_per_action": None if warming_up else stat(result.ms_per_action, statistics.median),
        "model_rows": run.agent.compute.model_rows,
    }
    if run.actor_critic is not None:
        row.update(run.actor_critic.stats(), eval_actor_return=stat(actor, np.mean))
    if run.config.value.gated():  # whether the plans used V, and why
        value = run.value.value
        r2, gain = (None if x.isnan() else float(x) for x in (value.checked_r2, value.trial_gain))
        row.update(value_trusted=bool(value.trusted), value_r2=r2, value_trial_gain=gain)
    if isinstance(run.agent, TreeSearchAgent):  # moves with --mcts.adaptive-horizon
        row["tree_discount"] = run.agent.config.discount
    if run.config.safety.constraint is not None:  # constrained task: what the run violated
        row.update(
            cost=result.cost,
            eval_cost=stat(eval_costs, np.mean),
            eval_costs=None if eval_costs is None else eval_costs.tolist(),
            vetoed_steps=0 if warming_up else run.agent.vetoed_steps,
            plan_cost=None if warming_up else stat(run.agent.plan_cost, statistics.median),
        )
    return row


def _finish_episode(run: Run, row: dict[str, Any], bar: RunProgress) -> None:
    """Record the episode's row, then checkpoint: the checkpoint is the commit point."""
    run.dir.stamp_cpu(row)  # before the checkpoint: a resume writes its rows back
    run.progress.history.append(row)
    run.progress.episode = row["episode"] + 1
    _checkpoint(run)
    run.dir.append_metrics(row)
    plot_learning_curve(
        run.progress.history, run.dir.plot_path, _title(run.config), run.task.solved_return
    )
    bar.finish_episode(row)


def _record(run: Run, event: dict[str, Any]) -> None:
    run.progress.history.append(event)
    run.dir.append_metrics(event)


def _value_discount(config: TrainConfig) -> float:
    if config.algo == "loop":
        return config.loop.gamma
    return config.mcts.discount if config.planner == "mcts" else config.rollout.discount


def _policy_name(config: TrainConfig) -> str:
    return f"{'loop' if config.algo == 'loop' else 'mpc'}-{config.planner}"


def _title(config: TrainConfig) -> str:
    return f"{config.env} · {_policy_name(config)} · seed {config.seed}"


def _generators(run: Run) -> dict[str, torch.Generator]:
    return {"planner": run.agent.generator, "eval_planner": run.eval_agent.generator}


def _checkpoint(run: Run) -> None:
    # What the next episode starts from, kept per episode so `forethought explain` can replay
    # any step: the model and the planner's random state (warm starts reset at episode start).
    value = {} if run.value is None else {"value": run.value.value.state_dict()}
    if isinstance(run.agent, TreeSearchAgent):
        value["tree_discount"] = run.agent.config.discount
    run.dir.save_snapshot(
        run.progress.episode,
        {"model": run.model.state_dict(), "planner": run.agent.generator.get_state(), **value},
    )
    run.progress.log_records = len(run.log)
    if run.value is not None:
        value.update(run.value.state_dict())
    if run.actor_critic is not None:
        value["actor_critic"] = run.actor_critic.state_dict()
    run.dir.save_checkpoint(
        {
            **value,
            "model": run.model.state_dict(),
            "optimizer": run.trainer.optimizer.state_dict(),
            "buffer": run.buffer.state_dict(),
            "rng": rng_states(run.rng, _generators(run)),
            "progress": run.progress.state_dict(),
            "adaptation": run.adaptation.state_dict(),
            "model_rows": run.agent.compute.model_rows,
        }
    )
