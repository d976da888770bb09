"""The offline loop (`forethought offline`): learn from a logged dataset, never from the world.

    load and check the dataset (Minari); its spaces must be the evaluation environment's
    mopo, morel: fit the dynamics ensemble on the dataset (reward learned, termination known
                 where the task has a function for it); checkpoint
    repeat until `gradient_steps`:
        learner.train(eval_every)          mopo: SAC on penalised imagined data (trainers/mopo.py)
                                           bc: regression on the logged actions (trainers/bc.py)
                                           morel: nothing (it plans; trainers/morel.py)
        evaluate on the real environment   (reporting only: nothing learned from it)
        metrics row; checkpoint

A run killed anywhere resumes from its last checkpoint (`forethought offline --resume RUN_DIR`)
and ends exactly where the uninterrupted run would: the model, the learner's weights and
optimisers, the imagined data and every random stream are in the checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from forethought.data.offline import OfflineDataset, check_spaces_match, load_offline_dataset
from forethought.errors import ConfigError
from forethought.models import DynamicsModel, ModelTrainer
from forethought.reporting.plots import plot_offline_curve
from forethought.reporting.progress import RunProgress
from forethought.runtime import configure_cpu
from forethought.storage import RunDirectory, load_torch, read_json, save_torch
from forethought.tasks import TaskSpec, get_task, make_env
from forethought.tasks.episodes import evaluate_batched
from forethought.trainers.offline_config import OfflineConfig

KIND = "offline"  # config.json's marker that tells an offline run from an online one


class OfflineRunDir(RunDirectory):
    run_files = ("checkpoint.pt",)
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    plot_path = property(lambda self: self.path / "learning_curve.png")

    def load_checkpoint(self) -> dict[str, Any] | None:
        return load_torch(self.checkpoint_path) if self.checkpoint_path.exists() else None


@dataclass
class OfflineResult:
    path: Path
    history: list[dict[str, Any]]
    dataset: OfflineDataset


def is_offline_run(path: Path) -> bool:
    config = read_json(Path(path) / "config.json", "the run's configuration")
    return isinstance(config, dict) and config.get("kind") == KIND


def train_offline(config: OfflineConfig, console: Console | None = None) -> OfflineResult:
    """Start a new offline run from `config` and carry it to the end."""
    if config.resume is not None:
        return resume_offline(config.resume, console, given=config)
    config.validate()
    dataset, env_id = _dataset_and_env(config)  # refuse bad data before a directory exists
    directory = OfflineRunDir(config.run_dir())
    directory.create_directory({"kind": KIND, **config.to_dict()})
    try:
        return _execute(config, directory, dataset, env_id, None, console)
    finally:
        directory.close()


def resume_offline(
    run_dir: Path, console: Console | None = None, given: OfflineConfig | None = None
) -> OfflineResult:
    directory = OfflineRunDir(run_dir)
    saved = directory.open_directory("resume")
    try:
        if saved.get("kind") != KIND:
            raise ConfigError(
                "resume", f"{run_dir} is not an offline run (see `forethought train --resume`)"
            )
        config = OfflineConfig.from_dict(saved, str(directory.config_path))
        if given is not None:  # only the settings that do not change the result
            config = replace(config, threads=given.threads, quiet=given.quiet)
        dataset, env_id = _dataset_and_env(config)
        return _execute(config, directory, dataset, env_id, directory.load_checkpoint(), console)
    finally:
        directory.close()


def _dataset_and_env(config: OfflineConfig) -> tuple[OfflineDataset, str]:
    dataset = load_offline_dataset(str(config.dataset))
    env_id = config.env or dataset.env_id
    if env_id is None:
        raise ConfigError("env", f"dataset '{dataset.name}' names no environment; pass --env")
    check_spaces_match(dataset, make_env(env_id), env_id)
    return dataset, env_id


def _execute(config, directory, dataset, env_id, checkpoint, console) -> OfflineResult:
    configure_cpu(config.threads)
    console = console or Console(quiet=config.quiet)
    if config.quiet:
        console = Console(quiet=True)
    history = [] if checkpoint is None else list(checkpoint["history"])
    directory.rewrite_metrics(history)  # rows written after the checkpoint are redone
    model, fit_row = _model(config, dataset, env_id, checkpoint)
    if checkpoint is None and model is not None:
        checkpoint = {"dynamics": model.state_dict(), "fit": fit_row, "history": history}
        save_torch(directory.checkpoint_path, checkpoint)
    learner = make_learner(config, dataset, model, env_id)
    if checkpoint is not None and "learner" in checkpoint:
        learner.load_state_dict(checkpoint["learner"])
    total = 0 if config.algo == "morel" else config.gradient_steps
    envs = [make_env(env_id) for _ in range(config.eval_episodes)]
    title = f"{dataset.name} · {config.algo} · seed {config.seed}"
    with RunProgress(console, config, total, learner.steps) as bar:
        bar.status("learning")
        while learner.steps < total or not history:
            chunk = min(
                config.eval_every - learner.steps % config.eval_every, total - learner.steps
            )
            start = time.perf_counter()
            learner.train(chunk)
            bar.advance_step(chunk)
            row = _evaluate(config, learner, envs, dataset, fit_row)
            row["train_seconds"] = time.perf_counter() - start
            history.append(row)
            directory.append_metrics(row)
            state = {"history": history, "learner": learner.state_dict(), "fit": fit_row}
            if model is not None:
                state["dynamics"] = model.state_dict()
            save_torch(directory.checkpoint_path, state)
            plot_offline_curve(
                history, directory.plot_path, title, float(dataset.episode_returns.mean())
            )
            bar.status(f"eval {row['eval_return']:.1f}" if row["eval_return"] is not None else "")
    _print_summary(console, history, dataset, directory)
    return OfflineResult(directory.path, history, dataset)


def dataset_model(
    dataset: OfflineDataset, config, env_id: str | None, seed: int, device: str = "cpu"
) -> DynamicsModel:
    """A fresh ensemble for `dataset`, initialised from `seed`: the reward is learned from the
    logs (as every offline method sees it), the termination comes from the task where known."""
    task = get_task(env_id) if env_id else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DynamicsModel(
            dataset.transitions.obs.shape[1],
            dataset.transitions.action.shape[1],
            config,
            learn_reward=True,
            learn_termination=task is None or task.termination_fn is None,
        )
    return model.to(device)


def fit_on_dataset(model: DynamicsModel, dataset: OfflineDataset, fit, seed: int):
    """Fit `model` on every logged transition (its own seeded stream); returns the report."""
    return ModelTrainer(model, fit).fit(dataset.transitions, np.random.default_rng([seed, 0]))


def _model(config, dataset, env_id, checkpoint) -> tuple[DynamicsModel | None, dict | None]:
    """The dynamics ensemble (mopo, morel): fitted on the dataset, or restored."""
    if config.algo == "bc":
        return None, None
    model = dataset_model(dataset, config.model, env_id, config.seed, config.device)
    if checkpoint is not None and "dynamics" in checkpoint:
        model.load_state_dict(checkpoint["dynamics"])
        return model.eval(), checkpoint["fit"]
    report = fit_on_dataset(model, dataset, config.fit, config.seed)
    fit_row = {
        "holdout_error": report.holdout_error,
        "fit_epochs": report.epochs,
        "fit_seconds": report.seconds,
    }
    return model.eval(), fit_row


def make_learner(config: OfflineConfig, dataset: OfflineDataset, model, env_id: str):
    """The configured learner (each has train, act, state_dict, load_state_dict, stats, steps)."""
    task = get_task(env_id)
    if config.algo == "bc":
        from forethought.trainers.bc import BCLearner

        return BCLearner(config.bc, dataset, config.seed, config.device)
    if config.algo == "mopo":
        from forethought.trainers.mopo import MOPOLearner

        return MOPOLearner(
            config.mopo, dataset, model, task.termination_fn, config.seed, config.device
        )
    from forethought.trainers.morel import MOReLLearner

    learned_reward = TaskSpec(env_id, reward_fn=None, termination_fn=task.termination_fn)
    return MOReLLearner(config, dataset, model, learned_reward)


def _evaluate(config, learner, envs, dataset: OfflineDataset, fit_row) -> dict[str, Any]:
    row: dict[str, Any] = {"gradient_steps": learner.steps, **(fit_row or {}), **learner.stats()}
    if not envs:
        return {**row, "eval_return": None, "eval_return_std": None, "normalized_score": None}
    if hasattr(learner, "reset"):
        learner.reset()
    start = time.perf_counter()
    seeds = [config.eval_seed + j for j in range(len(envs))]
    returns = evaluate_batched(envs, lambda obs, rows: _act(learner, obs, rows), seeds)
    score = None
    if dataset.ref_min_score is not None and dataset.ref_max_score is not None:
        score = float(dataset.normalized_score(returns.mean()))
    return {
        **row,
        "eval_return": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_returns": returns.tolist(),
        "normalized_score": score,
        "eval_seconds": time.perf_counter() - start,
    }


def _act(learner, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return learner.act(obs, rows) if _plans(learner) else learner.act(obs)


def _plans(learner) -> bool:
    """The planner keeps a warm start per parallel episode (and resets it); policies are
    stateless."""
    return hasattr(learner, "reset")


def _print_summary(console: Console, history, dataset: OfflineDataset, directory) -> None:
    last = history[-1]
    behaviour = float(dataset.episode_returns.mean())
    if last["eval_return"] is None:
        console.print(f"trained without evaluation; run directory: {directory.path}")
        return
    score = last.get("normalized_score")
    console.print(
        f"{dataset.name}: evaluation return {last['eval_return']:.1f} ± "
        f"{last['eval_return_std']:.1f}"
        + (f" (normalised {score:.1f})" if score is not None else "")
        + f"; the dataset's behaviour averaged {behaviour:.1f}\n"
        f"run directory: {directory.path}\nlearning curve: {directory.plot_path}"
    )


def load_offline_policy(run_dir: Path, device: str = "cpu"):
    """The final policy of an offline run, as (act(obs batch) -> action batch, label)."""
    directory = OfflineRunDir(run_dir)
    config = OfflineConfig.from_dict(directory.open_directory("--policy", lock=False), str(run_dir))
    checkpoint = directory.load_checkpoint()
    if checkpoint is None or "learner" not in checkpoint:
        raise ConfigError("--policy", f"{run_dir} has not finished an evaluation round yet")
    config = replace(config, device=device)
    dataset, env_id = _dataset_and_env(config)
    model, _ = _model(config, dataset, env_id, checkpoint)
    learner = make_learner(config, dataset, model, env_id)
    learner.load_state_dict(checkpoint["learner"])
    if _plans(learner):
        return (lambda obs: learner.act(obs, None)), f"{config.algo} ({Path(run_dir).name})"
    return learner.act, f"{config.algo} ({Path(run_dir).name})"
