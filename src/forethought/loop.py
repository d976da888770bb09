"""The model-based control loop (PETS-style MPC), top to bottom:

    warm up: act at random for `warmup_episodes`, logging every transition
    for each episode:
        collect   one episode with the current policy (random, then MPC), every transition
                  appended to the crash-safe log before the next action is chosen
        fit       the dynamics ensemble on everything collected so far
        evaluate  the MPC agent on fixed evaluation seeds (all episodes in one batch)
        record    a metrics row, a checkpoint, the learning-curve plot

While acting, an optional monitor compares each real next state with the model's prediction
and refits mid-episode when the model has drifted (`forethought.monitor`).

`train(config)` starts a run; `resume(run_dir)` continues one that was killed, rebuilding its
buffer from the last checkpoint plus the transition log, so no completed transition is lost or
counted twice.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console

from forethought.agents.mpc import MPCAgent
from forethought.buffer import ReplayBuffer, TransitionLog
from forethought.config import TrainConfig
from forethought.evaluation import evaluate_batched, plot_learning_curve, run_episode, summary_table
from forethought.evaluation.episodes import EpisodeResult
from forethought.evaluation.progress import RunProgress
from forethought.models import DynamicsModel, FitReport, ModelTrainer
from forethought.monitor import ModelErrorMonitor, prediction_surprise
from forethought.planners import make_planner
from forethought.runs import (
    Progress,
    RunDir,
    restore_rng_states,
    rng_states,
)
from forethought.tasks import TaskSpec, check_continuous, check_env, get_task, make_env
from forethought.tasks.drift import DynamicsDrift

SMALL_FIT = 200  # transitions: fewer after forgetting keep the previous fit's normalisation
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
    agent: MPCAgent  # acts in the training episodes
    eval_agent: MPCAgent  # same model, its own warm starts and RNG, for evaluation episodes
    rng: np.random.Generator
    progress: Progress
    monitor: ModelErrorMonitor
    refit_due: bool = False  # the monitor fired and asked for a refit at the episode's end
    refit_from_scratch: bool = False  # after forgetting: the episode-end refit restarts the model
    alarms_this_episode: int = 0


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    plot_path: Path


def train(config: TrainConfig, console: Console | None = None) -> RunResult:
    """Start a new run from `config` and carry it to the end."""
    config.validate()
    check_env(config.env, f"planner {config.planner}", **config.make_kwargs())
    if config.drift.at_step is not None:  # a bad drift parameter fails before the run dir exists
        DynamicsDrift(make_env(config.env, **config.make_kwargs()), config.drift).close()
    run = _build(config, RunDir.create(config))
    return _execute(run, console)


def resume(run_dir: Path, console: Console | None = None) -> RunResult:
    """Continue the run in `run_dir` from its last checkpoint and transition log."""
    directory, config = RunDir.open(run_dir)
    config.validate()
    run = _build(config, directory)
    checkpoint = directory.load_checkpoint()
    if checkpoint is not None:
        run.model.load_state_dict(checkpoint["model"])
        run.trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        run.buffer = ReplayBuffer.from_state_dict(checkpoint["buffer"])
        restore_rng_states(checkpoint["rng"], run.rng, _generators(run))
        run.progress = Progress(**checkpoint["progress"])
    # Transitions completed after the checkpoint (the interrupted episode) come from the log.
    _, tail = run.log.read(start=run.buffer.total_added)
    if len(tail):
        run.buffer.add_batch(tail)
        run.progress.history.append(
            {
                "event": "interrupted",
                "episode": run.progress.episode,
                "transitions_recovered": len(tail),
            }
        )
    run.progress.env_steps = run.buffer.total_added
    if isinstance(run.env, DynamicsDrift):  # the drift clock counts every completed step
        run.env.total_steps = run.progress.env_steps
        run.env.step_clock_changed()
    directory.rewrite_metrics(run.progress.history)
    return _execute(run, console)


def _build(config: TrainConfig, directory: RunDir) -> Run:
    """Environment, model, planner and agent for `config`, in their initial state."""
    configure_torch(config)
    torch.manual_seed(config.seed)
    make_kwargs = (
        {} if config.max_episode_steps is None else {"max_episode_steps": config.max_episode_steps}
    )
    env = make_env(config.env, seed=config.seed, **make_kwargs)
    check_continuous(env, config.env, f"planner {config.planner}")
    eval_envs = [make_env(config.env, **make_kwargs) for _ in range(config.eval_episodes)]
    if config.drift.at_step is not None:  # evaluations always see the current dynamics
        env = DynamicsDrift(env, config.drift)
        eval_envs = [DynamicsDrift(e, config.drift, clock=env) for e in eval_envs]
    task, model, agent = build_agent(config, env)
    obs_dim, action_dim = model.obs_dim, model.action_dim
    return Run(
        config=config,
        dir=directory,
        task=task,
        env=env,
        eval_envs=eval_envs,
        buffer=ReplayBuffer(obs_dim, action_dim, config.buffer_capacity),
        log=directory.transition_log(obs_dim, action_dim),
        model=model,
        trainer=ModelTrainer(model, config.fit),
        agent=agent,
        eval_agent=MPCAgent(
            model, agent.planner, task, config.rollout, config.device, seed=config.seed + 1
        ),
        rng=np.random.default_rng(config.seed),
        progress=Progress(),
        monitor=ModelErrorMonitor(config.monitor),
    )


def configure_torch(config: TrainConfig) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)


def build_agent(config: TrainConfig, env: gym.Env) -> tuple[TaskSpec, DynamicsModel, MPCAgent]:
    """The task spec, a fresh dynamics model and the MPC agent that plans with it."""
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
    agent = MPCAgent(model, planner, task, config.rollout, device=config.device, seed=config.seed)
    return task, model, agent


def _execute(run: Run, console: Console | None) -> RunResult:
    config, progress = run.config, run.progress
    if console is None or config.quiet:
        console = Console(quiet=config.quiet)
    steps_per_episode = run.env.spec.max_episode_steps if run.env.spec else None
    total_steps = config.episodes * steps_per_episode if steps_per_episode else None
    if config.steps is not None:
        total_steps = min(total_steps or config.steps, config.steps)
    title = f"{config.env} · {config.planner} · seed {config.seed}"

    with RunProgress(console, config, total_steps, progress.env_steps) as bar:
        for episode in range(progress.episode, config.episodes):
            if config.steps is not None and progress.env_steps >= config.steps:
                break  # the step budget is spent
            result = _collect(run, episode, bar)  # act in the real environment
            report = _fit_if_due(run, episode, bar)  # learn the model from all data so far
            eval_returns = None
            last = episode + 1 == config.episodes or (
                config.steps is not None and progress.env_steps >= config.steps
            )
            if (episode + 1) % config.eval_every == 0 or last:
                bar.status("evaluating")
                eval_returns = _evaluate(run)  # plan with the model on fixed seeds

            row = _episode_row(run, episode, result, report, eval_returns)
            progress.history.append(row)
            progress.episode = episode + 1
            _checkpoint(run)
            run.dir.append_metrics(row)
            plot_learning_curve(progress.history, run.dir.plot_path, title, run.task.solved_return)
            bar.finish_episode(row)

    console.print(summary_table(progress.history, title))
    console.print(f"run directory: {run.dir.path}\nlearning curve: {run.dir.plot_path}")
    run.log.close()
    return RunResult(run.dir.path, progress.history, run.dir.plot_path)


def _collect(run: Run, episode: int, bar: RunProgress) -> EpisodeResult:
    """One training episode, random during warm-up and MPC after; every transition is logged
    and added to the buffer before the next action is chosen."""
    config = run.config
    warming_up = episode < config.warmup_episodes
    low, high = run.env.action_space.low, run.env.action_space.high

    def random_policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return run.rng.uniform(low, high, size=(len(obs), len(low))).astype(np.float32)

    def on_step(t, obs, action, reward, next_obs, terminated, truncated):
        run.log.append(episode, t, obs, action, reward, next_obs, terminated, truncated)
        run.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        bar.advance_step()
        pending = run.progress.refit_at_step  # a refit waiting for new data after forgetting
        if config.monitor.enabled and not warming_up and pending is None:
            _watch_model(run, episode, obs, action, reward, next_obs, bar)
        pending = run.progress.refit_at_step
        if pending is not None and run.buffer.total_added >= pending:
            _refit_after_forgetting(run, episode, bar)
        if config.eval_every_steps and run.buffer.total_added % config.eval_every_steps == 0:
            _evaluate_between(run, episode, bar)

    run.agent.reset()
    run.agent.plan_disagreement.clear()
    run.alarms_this_episode = 0
    bar.start_episode(episode)
    seed = TRAIN_SEED_STRIDE * config.seed + episode
    result = run_episode(
        run.env,
        random_policy if warming_up else run.agent.act,
        seed,
        on_step,
        run.buffer.total_added,
    )
    run.progress.env_steps = run.buffer.total_added
    return result


def _fit_if_due(run: Run, episode: int, bar: RunProgress) -> FitReport | None:
    """Refit after the warm-up, on the fixed schedule, or when the monitor fired but was told to
    wait for the episode's end."""
    config = run.config
    due = (
        episode + 1 == config.warmup_episodes
        or (episode + 1) % config.refit_every == 0
        or run.refit_due
    )
    if (
        not due or run.progress.refit_at_step is not None
    ):  # after forgetting: wait for enough new data
        return None
    bar.status("fitting model")
    report = _refit(run, from_scratch=run.refit_from_scratch)
    run.refit_due = run.refit_from_scratch = False
    return report


def _refit(run: Run, from_scratch: bool = False) -> FitReport:
    """Fit the model on its training data (everything since `fit_from`) and restart the monitor
    from the new holdout surprise. `from_scratch` first forgets the weights too (after a change of
    dynamics they encode the old ones)."""
    if from_scratch:
        run.trainer.restart()
    data = run.buffer.since(run.progress.fit_from)
    few = len(data) < SMALL_FIT
    report = run.trainer.fit(data, run.rng, keep_normalization=few and _forgot_recently(run))
    baseline = report.holdout_surprise
    if _forgot_recently(run) and run.monitor.baseline is not None:
        # A fit on the few transitions since forgetting has a noisy holdout score: it may not set
        # a lower bar than the one a model fitted on plenty of data had.
        baseline = max(baseline, run.monitor.baseline)
    run.monitor.reset(baseline)
    return report


def _episode_row(run, episode, result, report, eval_returns) -> dict[str, Any]:
    warming_up = episode < run.config.warmup_episodes
    disagreement = run.agent.plan_disagreement

    def stat(values, fn):
        return None if values is None or len(values) == 0 else float(fn(values))

    return {
        "episode": episode,
        "policy": "random" if warming_up else f"mpc-{run.config.planner}",
        "env_steps": run.progress.env_steps,
        "return": result.episode_return,
        "eval_return": stat(eval_returns, np.mean),
        "eval_return_std": stat(eval_returns, np.std),
        "eval_returns": None if eval_returns is None else eval_returns.tolist(),
        "holdout_error": None if report is None else report.holdout_error,
        "fit_seconds": None if report is None else report.seconds,
        "fit_epochs": None if report is None else report.epochs,
        "drift_alarms": run.alarms_this_episode,
        "plan_disagreement": stat(disagreement, statistics.median),
        "ms_per_action": None if warming_up else statistics.median(result.ms_per_action),
        "model_rows": run.agent.compute.model_rows,
    }


def _evaluate_between(run: Run, episode: int, bar) -> None:
    """An evaluation on the step schedule (`eval_every_steps`), recorded as an event row."""
    bar.status("evaluating")
    returns = _evaluate(run)
    event = {
        "event": "evaluation",
        "episode": episode,
        "env_steps": run.buffer.total_added,
        "eval_return": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_returns": returns.tolist(),
    }
    run.progress.history.append(event)
    run.dir.append_metrics(event)
    bar.status("acting")


def _watch_model(run: Run, episode: int, obs, action, reward, next_obs, bar) -> None:
    """Feed one real transition to the model-error monitor; refit if it says so."""
    surprise = prediction_surprise(run.model, obs, action, reward, next_obs)
    if not run.monitor.observe(surprise):
        return
    step = run.buffer.total_added
    event = {
        "event": "model_drift",
        "episode": episode,
        "step": step,
        "windowed_surprise": run.monitor.windowed_mean,
        "holdout_surprise": run.monitor.baseline,
    }
    run.alarms_this_episode += 1
    config = run.config.monitor
    if config.forget and not _forgot_recently(run):
        # Only the transitions since the estimated change describe the dynamics now; the model
        # is refitted from scratch on those once there are `window` of them (its own event).
        run.progress.fit_from = max(run.progress.fit_from, step - run.monitor.steps_since_change())
        run.progress.forgot_at = step
        if config.refit_mid_episode:
            run.progress.refit_at_step = run.progress.fit_from + config.window
        else:
            run.refit_due = run.refit_from_scratch = True
            run.monitor.reset(run.monitor.baseline)  # one alarm per window until the refit
        event.update(
            forgot_before=run.progress.fit_from,
            refit_at_step=run.progress.refit_at_step,
            refit=False,
        )
    elif config.refit_mid_episode:
        bar.status("model drifted: refitting")
        report = _refit(run)
        event.update(
            refit=True, new_holdout_surprise=report.holdout_surprise, fit_seconds=report.seconds
        )
    else:
        run.refit_due = True
        run.monitor.reset(run.monitor.baseline)  # one alarm per window until the refit
        event.update(refit=False)
    run.progress.history.append(event)
    run.dir.append_metrics(event)


def _refit_after_forgetting(run: Run, episode: int, bar) -> None:
    """The refit an alarm with forgetting scheduled, once enough new transitions exist."""
    bar.status("model drifted: refitting on the new data")
    run.progress.refit_at_step = None
    report = _refit(run, from_scratch=True)
    event = {
        "event": "refit_after_forgetting",
        "episode": episode,
        "step": run.buffer.total_added,
        "transitions": run.buffer.total_added - run.progress.fit_from,
        "new_holdout_surprise": report.holdout_surprise,
        "fit_seconds": report.seconds,
    }
    run.progress.history.append(event)
    run.dir.append_metrics(event)


def _forgot_recently(run: Run) -> bool:
    forgot_at = run.progress.forgot_at
    cooldown = run.config.monitor.forget_cooldown
    return forgot_at is not None and run.buffer.total_added - forgot_at < cooldown


def _generators(run: Run) -> dict[str, torch.Generator]:
    return {"planner": run.agent.generator, "eval_planner": run.eval_agent.generator}


def _evaluate(run: Run) -> np.ndarray:
    """Returns of the evaluation episodes (fixed seeds, planned for in one batch)."""
    config = run.config
    run.eval_agent.reset()
    seeds = [config.eval_seed + j for j in range(config.eval_episodes)]
    return evaluate_batched(run.eval_envs, run.eval_agent.act, seeds)


def _checkpoint(run: Run) -> None:
    run.dir.save_checkpoint(
        {
            "model": run.model.state_dict(),
            "optimizer": run.trainer.optimizer.state_dict(),
            "buffer": run.buffer.state_dict(),
            "rng": rng_states(run.rng, _generators(run)),
            "progress": {
                "episode": run.progress.episode,
                "env_steps": run.progress.env_steps,
                "history": run.progress.history,
                "fit_from": run.progress.fit_from,
                "forgot_at": run.progress.forgot_at,
                "refit_at_step": run.progress.refit_at_step,
            },
        }
    )
