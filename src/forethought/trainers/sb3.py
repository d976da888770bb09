"""Model-free baselines: Stable-Baselines3 SAC, TD3 and PPO under forethought's protocol.

The algorithms are SB3's own, untouched; what forethought adds is the comparison harness:
the same run directory (config.json, metrics.jsonl, checkpoint.pt, learning_curve.png), the
same evaluation (`eval_episodes` episodes on seeds eval_seed + j, deterministic actions,
batched), the same step budget and the same resume command as the model-based agents. So a
side-by-side comparison is one command per method:

    forethought train --algo mpc --env Pendulum-v1 --steps 2000
    forethought train --algo sac --env Pendulum-v1 --steps 20000 --eval-every-steps 200

Hyperparameters are rl-baselines3-zoo's tuned settings where the zoo has them for the
environment (`ZOO`), SB3's defaults otherwise.

Evaluation happens every `eval_every_steps` environment steps (default: one time limit). An
on-policy learner (PPO) only changes its policy once per rollout, so an evaluation point that
falls inside a rollout reuses the evaluation of the unchanged policy instead of replaying the
same episodes.

Resume: a checkpoint (SB3 model, replay buffer, observation normaliser, metrics, all in one
atomically replaced file) is written at every evaluation; `--resume` continues from the last
one, so at most `eval_every_steps` steps are redone (SB3 keeps no per-transition log).
"""

from __future__ import annotations

import io
import pickle
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.console import Console
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from forethought.config import TrainConfig
from forethought.reporting import plot_learning_curve, summary_table
from forethought.reporting.progress import RunProgress
from forethought.runtime import configure_threads
from forethought.tasks import check_env, get_task, make_env
from forethought.tasks.episodes import evaluate_batched
from forethought.trainers.run_dir import RunDir, RunResult

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "ppo": PPO, "mbpo": SAC}

# rl-baselines3-zoo's tuned hyperparameters (hyperparams/{sac,ppo,td3}.yml). Keys that are not
# constructor arguments: n_envs, normalize, noise_std (TD3's Gaussian action noise).
ZOO: dict[tuple[str, str], dict[str, Any]] = {
    ("sac", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("sac", "MountainCarContinuous-v0"): {
        "learning_rate": 3e-4,
        "buffer_size": 50_000,
        "batch_size": 512,
        "ent_coef": 0.1,
        "train_freq": 32,
        "gradient_steps": 32,
        "gamma": 0.9999,
        "tau": 0.01,
        "learning_starts": 0,
        "use_sde": True,
        "policy_kwargs": {"log_std_init": -3.67, "net_arch": [64, 64]},
    },
    ("td3", "Pendulum-v1"): {"noise_std": 0.1, "learning_starts": 1000},
    ("ppo", "Pendulum-v1"): {
        "n_envs": 4,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
    ("ppo", "MountainCarContinuous-v0"): {
        "normalize": True,
        "batch_size": 256,
        "n_steps": 8,
        "gamma": 0.9999,
        "learning_rate": 7.77e-5,
        "ent_coef": 0.00429,
        "clip_range": 0.1,
        "n_epochs": 10,
        "gae_lambda": 0.9,
        "max_grad_norm": 5,
        "vf_coef": 0.19,
        "use_sde": True,
        "policy_kwargs": {"log_std_init": -3.29, "ortho_init": False},
    },
    ("ppo", "InvertedPendulum-v5"): {  # the zoo's InvertedPendulum-v3 entry
        "normalize": True,
        "batch_size": 64,
        "n_steps": 32,
        "gamma": 0.999,
        "learning_rate": 0.000222425,
        "ent_coef": 1.37976e-07,
        "clip_range": 0.4,
        "n_epochs": 5,
        "gae_lambda": 0.9,
        "max_grad_norm": 0.3,
        "vf_coef": 0.19816,
    },
}


def hyperparameters(algo: str, env_id: str) -> dict[str, Any]:
    """The zoo's settings for (algo, env), or {} for SB3's defaults."""
    return dict(ZOO.get((algo, env_id), {}))


@dataclass
class ModelFreeRun:
    config: TrainConfig
    dir: RunDir
    model: BaseAlgorithm
    normalizer: VecNormalize | None
    eval_envs: list
    budget: int  # environment steps in total
    eval_every: int
    history: list[dict[str, Any]]
    rollouts: Any = None  # MBPO's BranchedRollouts callback (dynamics model and its log)


def step_budget(config: TrainConfig, time_limit: int | None) -> int:
    if config.steps is not None:
        return config.steps
    return config.episodes * (time_limit or 1000)


def check(config: TrainConfig) -> None:
    """Everything that can be checked before a run directory is created."""
    check_env(config.env, config.algo, **config.make_kwargs())


def start(directory: RunDir, config: TrainConfig, console: Console | None = None) -> RunResult:
    """Carry a new model-free (or MBPO) run in `directory` to the end."""
    return _execute(_build(config, directory, checkpoint=None), console)


def resume(directory: RunDir, config: TrainConfig, console: Console | None = None) -> RunResult:
    """Continue a model-free run from its last checkpoint (the last evaluation)."""
    checkpoint = directory.load_checkpoint()
    run = _build(config, directory, checkpoint)
    if checkpoint is not None and run.model.num_timesteps < run.budget:
        run.history.append({"event": "interrupted", "env_steps": run.model.num_timesteps})
    directory.rewrite_metrics(run.history)
    return _execute(run, console)


def _build(config: TrainConfig, directory: RunDir, checkpoint: dict | None) -> ModelFreeRun:
    configure_threads(config.threads)
    settings = hyperparameters(config.algo, config.env)
    n_envs = settings.pop("n_envs", 1)
    normalize = settings.pop("normalize", False)
    noise_std = settings.pop("noise_std", None)
    make_kwargs = config.make_kwargs()
    time_limit = check_env(config.env, config.algo, **make_kwargs)

    venv = DummyVecEnv(
        [lambda: Monitor(make_env(config.env, **make_kwargs)) for _ in range(n_envs)]
    )
    if normalize:
        if checkpoint is None:
            venv = VecNormalize(venv, gamma=settings.get("gamma", 0.99))
        else:  # the running statistics the policy was trained with
            saved: VecNormalize = pickle.loads(checkpoint["normalizer"])
            saved.set_venv(venv)
            venv = saved
    if noise_std is not None:
        action_dim = venv.action_space.shape[0]
        settings["action_noise"] = NormalActionNoise(
            np.zeros(action_dim), noise_std * np.ones(action_dim)
        )
    rollouts = None
    if config.algo == "mbpo":
        from forethought.trainers import mbpo

        settings.update(mbpo.sac_settings(config.mbpo))
        rollouts = mbpo.attach(
            config, venv.action_space, venv.observation_space.shape[0], config.device
        )
        if checkpoint is not None:
            rollouts.dynamics.load_state_dict(checkpoint["dynamics"])
            rollouts.trainer.optimizer.load_state_dict(checkpoint["dynamics_optimizer"])
            rollouts.log = list(checkpoint["refreshes"])
    algo = ALGORITHMS[config.algo]
    if checkpoint is None:
        model = algo("MlpPolicy", venv, seed=config.seed, device=config.device, **settings)
        history: list[dict[str, Any]] = []
    else:
        model = algo.load(io.BytesIO(checkpoint["model"]), env=venv, device=config.device)
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(io.BytesIO(checkpoint["replay_buffer"]))
        history = list(checkpoint["history"])
    eval_envs = [make_env(config.env, **make_kwargs) for _ in range(config.eval_episodes)]
    return ModelFreeRun(
        config=config,
        dir=directory,
        model=model,
        normalizer=venv if normalize else None,
        eval_envs=eval_envs,
        budget=step_budget(config, time_limit),
        eval_every=config.eval_every_steps or time_limit or 1000,
        history=history,
        rollouts=rollouts,
    )


def _execute(run: ModelFreeRun, console: Console | None) -> RunResult:
    config = run.config
    if console is None or config.quiet:
        console = Console(quiet=config.quiet)
    title = f"{config.env} · {config.algo} · seed {config.seed}"
    task = get_task(config.env)
    done = run.model.num_timesteps
    with RunProgress(console, config, run.budget, done) as bar:
        callback = _EvaluateAndCheckpoint(run, bar, title, task.solved_return)
        if done < run.budget:
            bar.status("acting")
            callbacks = [callback] if run.rollouts is None else [run.rollouts, callback]
            run.model.learn(
                total_timesteps=run.budget - done,
                callback=callbacks,
                reset_num_timesteps=done == 0,
            )
        if not run.history or run.history[-1].get("env_steps") != run.model.num_timesteps:
            callback.evaluate_and_record()  # always an evaluation at the end
    console.print(summary_table(run.history, title))
    console.print(f"run directory: {run.dir.path}\nlearning curve: {run.dir.plot_path}")
    return RunResult(run.dir.path, run.history, run.dir.plot_path)


class _EvaluateAndCheckpoint(BaseCallback):
    """Evaluate on the fixed seeds every `eval_every` steps, append the metrics row, write the
    checkpoint and the plot."""

    def __init__(self, run: ModelFreeRun, bar: RunProgress, title: str, threshold: float | None):
        super().__init__()
        self.run, self.bar, self.title, self.threshold = run, bar, title, threshold
        done = run.model.num_timesteps
        self.next_eval = (done // run.eval_every + 1) * run.eval_every
        self.episode_returns: list[float] = []
        self.episodes = sum(1 for r in run.history if "event" not in r)
        self.last_eval: tuple[int, np.ndarray] | None = None  # (policy updates, returns)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.episode_returns.append(float(info["episode"]["r"]))
        self.bar.advance_step(self.training_env.num_envs)
        if self.num_timesteps >= self.next_eval:
            self.evaluate_and_record()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.run.eval_every
        return True

    def evaluate_and_record(self) -> None:
        run = self.run
        self.bar.status("evaluating")
        updates = getattr(run.model, "_n_updates", 0)
        start = time.perf_counter()
        if self.last_eval is not None and self.last_eval[0] == updates:
            returns, reused = self.last_eval[1], True  # same policy as at the last evaluation
        else:
            returns, reused = evaluate_model_free(run.model, run.normalizer, run), False
            self.last_eval = (updates, returns)
        row = {
            "episode": self.episodes,
            "policy": run.config.algo,
            "env_steps": int(run.model.num_timesteps),
            "return": float(np.mean(self.episode_returns)) if self.episode_returns else None,
            "training_episodes": len(self.episode_returns),
            "eval_return": float(returns.mean()),
            "eval_return_std": float(returns.std()),
            "eval_returns": returns.tolist(),
            "eval_reused": reused,
            "eval_seconds": time.perf_counter() - start,
            "policy_updates": int(updates),
        }
        if run.rollouts is not None and run.rollouts.log:
            latest = run.rollouts.log[-1]
            row.update(
                holdout_error=latest["holdout_error"],
                rollout_length=latest["rollout_length"],
                imagined_in_buffer=int(run.model.replay_buffer.model.size()),
                model_refreshes=len(run.rollouts.log),
            )
        self.episodes += 1
        self.episode_returns = []
        run.history.append(row)
        _checkpoint(run)
        run.dir.append_metrics(row)
        plot_learning_curve(run.history, run.dir.plot_path, self.title, self.threshold)
        self.bar.finish_episode(row)
        self.bar.status("acting")


def evaluate_model_free(model: BaseAlgorithm, normalizer: VecNormalize | None, run) -> np.ndarray:
    """Deterministic actions on the shared evaluation seeds, all episodes in one batch."""

    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        action, _ = model.predict(obs, deterministic=True)
        return action

    seeds = [run.config.eval_seed + j for j in range(run.config.eval_episodes)]
    return evaluate_batched(run.eval_envs, act, seeds)


def _checkpoint(run: ModelFreeRun) -> None:
    model_bytes = io.BytesIO()
    run.model.save(model_bytes)
    state: dict[str, Any] = {"model": model_bytes.getvalue(), "history": run.history}
    if isinstance(run.model, OffPolicyAlgorithm):
        buffer_bytes = io.BytesIO()
        run.model.save_replay_buffer(buffer_bytes)
        state["replay_buffer"] = buffer_bytes.getvalue()
    if run.normalizer is not None:
        state["normalizer"] = pickle.dumps(run.normalizer)
    if run.rollouts is not None:
        state["dynamics"] = run.rollouts.dynamics.state_dict()
        state["dynamics_optimizer"] = run.rollouts.trainer.optimizer.state_dict()
        state["refreshes"] = run.rollouts.log
    run.dir.save_checkpoint(state)
