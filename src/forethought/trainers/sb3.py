"""Model-free baselines: Stable-Baselines3 SAC, TD3, PPO and DQN under forethought's protocol.

The algorithms are SB3's own, untouched; what forethought adds is the comparison harness:
the same run directory (config.json, metrics.jsonl, checkpoint.pt, learning_curve.png), the
same evaluation (`eval_episodes` episodes on seeds eval_seed + j, deterministic actions,
batched), the same step budget and the same resume command as the model-based agents. So a
side-by-side comparison is one command per method:

    forethought train --algo mpc --env Pendulum-v1 --steps 2000
    forethought train --algo sac --env Pendulum-v1 --steps 20000 --eval-every-steps 200

SAC and TD3 act in Box action spaces, DQN in Discrete ones, PPO in both (CartPole-v1,
Acrobot-v1); `TrainConfig.acting` says which, and `check` refuses the others before anything is
written. Hyperparameters are rl-baselines3-zoo's tuned settings where the zoo has them for the
environment (`ZOO`), SB3's defaults otherwise. The zoo's `n_timesteps` is not used: the step
budget is `--steps`, and a zoo schedule (`lin_<v>`) decays linearly to 0 over that budget.

Evaluation happens every `eval_every_steps` environment steps (default: one time limit). An
on-policy learner (PPO) only changes its policy once per rollout, so an evaluation point that
falls inside a rollout reuses the evaluation of the unchanged policy instead of replaying the
same episodes. SB3 ends a rollout whole, so where a rollout is longer than one step (PPO's
n_envs x n_steps, a DQN `train_freq` of 256) the run may pass `--steps` by less than a rollout.

Determinism: SB3 seeds python's `random`, numpy's and torch's global generators, the action
space and the training envs from `--seed`; MBPO's dynamics ensemble is initialised from the seed
too, and its fits and rollouts draw from their own seeded streams. On one machine with the same
`--threads`, two runs of one command give the same metrics (wall-clock fields aside). Changing
`--threads` may change float summation order, and on CUDA some kernels are not deterministic.
One wall-clock dependence remains in MBPO: a dynamics fit stops early once it has run
`--fit.max-seconds` (models/fitting.py), so a fit that reaches that cap trains for a
load-dependent number of epochs; raise the cap where exact repeats matter.

Resume: after every evaluation a checkpoint (one atomically replaced file) is written at the
start of the next SB3 rollout, the first point where every transition is stored and every
update done: the SB3 model (weights, optimisers, counters), the replay buffer (MBPO's imagined
transitions included), the observation normaliser, MBPO's dynamics model and rollout streams,
the metrics, and the loop state SB3's own save leaves out (the training envs mid-episode,
`_last_obs`, every random generator, gSDE and action noise, the evaluation schedule). A run
killed anywhere and resumed redoes the work since that checkpoint, exactly: it ends with the
metrics, buffer and weights of the run that was never killed. (SAC, TD3, MBPO: at most
`eval_every_steps` plus one training step redone; DQN: `eval_every_steps` plus one `train_freq`
rollout, its exploration rate and target-network counter included in SB3's model state; PPO: up
to one rollout.)
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from forethought.config import TrainConfig
from forethought.reporting import plot_learning_curve, summary_table
from forethought.reporting.progress import RunProgress
from forethought.runtime import configure_cpu
from forethought.storage import atomic_write_bytes
from forethought.tasks import check_env, get_task, make_env
from forethought.tasks.constraints import LagrangianPenalty, with_costs
from forethought.tasks.episodes import evaluate_batched
from forethought.trainers.run_dir import RunDir, RunResult
from forethought.trainers.sb3_state import (
    filled_part,
    load_replay_buffer,
    loop_state,
    restore_envs,
    restore_generators,
)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "sac": SAC,
    "td3": TD3,
    "ppo": PPO,
    "dqn": DQN,
    "mbpo": SAC,
}

# rl-baselines3-zoo's tuned hyperparameters (hyperparams/{sac,ppo,td3,dqn}.yml). Keys that are
# not constructor arguments: n_envs, normalize, noise_std (TD3's Gaussian action noise). A string
# value "lin_<v>" is the zoo's linear schedule, v * progress remaining (`hyperparameters`).
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
    # The zoo's MuJoCo defaults (HalfCheetah-v4), except learning_starts: SB3's 100 as the
    # HalfCheetah SAC runs use, where the zoo's 10,000 random steps are a fifth of a 50k budget.
    ("td3", "HalfCheetah-v5"): {
        "noise_std": 0.1,
        "learning_rate": 1e-3,
        "batch_size": 256,
        "policy_kwargs": {"net_arch": [400, 300]},
    },
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
    ("ppo", "CartPole-v1"): {
        "n_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": "lin_0.001",
        "clip_range": "lin_0.2",
    },
    ("ppo", "Acrobot-v1"): {
        "normalize": True,
        "n_envs": 16,
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("dqn", "CartPole-v1"): {
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04,
        "policy_kwargs": {"net_arch": [256, 256]},
    },
    ("dqn", "Acrobot-v1"): {
        "learning_rate": 6.3e-4,
        "batch_size": 128,
        "buffer_size": 50_000,
        "learning_starts": 0,
        "gamma": 0.99,
        "target_update_interval": 250,
        "train_freq": 4,
        "gradient_steps": -1,
        "exploration_fraction": 0.12,
        "exploration_final_eps": 0.1,
        "policy_kwargs": {"net_arch": [256, 256]},
    },
}


# Settings the zoo may give as a schedule string (rl_zoo3 ExperimentManager._preprocess_schedules).
_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")


def hyperparameters(algo: str, env_id: str) -> dict[str, Any]:
    """The zoo's settings for (algo, env), or {} for SB3's defaults. A "lin_<v>" schedule
    becomes SB3's LinearSchedule(v, 0, 1), which is the zoo's v * progress_remaining; progress
    runs over the `--steps` budget (not the zoo's n_timesteps)."""
    settings = copy.deepcopy(ZOO.get((algo, env_id), {}))
    for key in _SCHEDULED:
        value = settings.get(key)
        if isinstance(value, str):
            kind, initial = value.split("_")
            if kind != "lin":
                raise ValueError(f"unknown zoo schedule {value!r} for {key}")
            settings[key] = LinearSchedule(float(initial), 0.0, 1.0)
    return settings


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
    loop: dict[str, Any] | None = None  # a checkpoint's loop state, until the run restores it


def _training_envs(config, n_envs, normalize, settings, checkpoint, loop):
    """SB3's vectorised training environments (the plain DummyVecEnv and what the algorithm
    sees, a VecNormalize around it where the zoo normalises), restored from a checkpoint."""
    make_kwargs, safety = config.make_kwargs(), config.safety

    def make() -> gym.Env:  # info["cost"] on a constrained task; the Monitor sees the task's reward
        env = Monitor(with_costs(make_env(config.env, **make_kwargs), safety))
        return (
            LagrangianPenalty(env, safety.cost_limit, safety.lagrange_lr)
            if safety.lagrangian
            else env
        )

    inner = DummyVecEnv([make for _ in range(n_envs)])
    if not normalize:
        return inner, inner
    if checkpoint is None:
        return inner, VecNormalize(inner, gamma=settings.get("gamma", 0.99))
    saved: VecNormalize = pickle.loads(checkpoint["normalizer"])  # the policy's statistics
    saved.set_venv(inner)
    if loop is not None:  # set_venv zeroes the discounted returns of running episodes
        saved.returns = loop["normalizer_returns"]
    return inner, saved


def _algorithm(config, inner, venv, settings, checkpoint, loop):
    """A fresh SB3 algorithm, or the checkpoint's with its replay buffer, training envs' state
    and next observation: (model, metrics history)."""
    algo = ALGORITHMS[config.algo]
    if config.safety.shield:
        from forethought.trainers.mbpo import ShieldedSAC

        algo = ShieldedSAC
    if checkpoint is None:
        return algo("MlpPolicy", venv, seed=config.seed, device=config.device, **settings), []
    model = algo.load(
        io.BytesIO(checkpoint["model"]), env=venv, device=config.device, force_reset=loop is None
    )
    if isinstance(model, OffPolicyAlgorithm):
        load_replay_buffer(model, checkpoint["replay_buffer"])
    if loop is not None:
        restore_envs(inner, loop["envs"])
        model._last_obs = loop["last_obs"]
        model._last_original_obs = loop["last_original_obs"]
        model._last_episode_starts = loop["last_episode_starts"]
    return model, list(checkpoint["history"])


def step_budget(config: TrainConfig, time_limit: int | None) -> int:
    if config.steps is not None:
        return config.steps
    return config.episode_limit * (time_limit or 1000)


def check(config: TrainConfig) -> None:
    """Everything that can be checked before a run directory is created."""
    check_env(config.env, *config.acting(), **config.make_kwargs())


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
    configure_cpu(config.threads)
    settings = hyperparameters(config.algo, config.env)
    n_envs = settings.pop("n_envs", 1)
    normalize = settings.pop("normalize", False)
    noise_std = settings.pop("noise_std", None)
    make_kwargs = config.make_kwargs()
    time_limit = check_env(config.env, *config.acting(), **make_kwargs)
    # Checkpoints written before exact resume hold no loop state: such a run continues from a
    # fresh episode with freshly seeded generators (not a replay of the uninterrupted run).
    loop = None if checkpoint is None else checkpoint.get("loop")
    inner, venv = _training_envs(config, n_envs, normalize, settings, checkpoint, loop)
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
            rollouts.load_state_dict(checkpoint)
    model, history = _algorithm(config, inner, venv, settings, checkpoint, loop)
    if config.safety.shield:
        rollouts.shield = mbpo.make_shield(config, model, rollouts, seed=config.seed)
        if checkpoint is not None and "shield" in checkpoint:
            rollouts.shield.load_state_dict(checkpoint["shield"])
        if rollouts.log:  # the model was fitted before the checkpoint: the shield is on
            model.shield = rollouts.shield
    eval_envs = [
        with_costs(make_env(config.env, **make_kwargs), config.safety)
        for _ in range(config.eval_episodes)
    ]
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
        loop=loop,
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
        if done < run.budget and not config.reached_stop_return(run.history):
            bar.status("acting")
            callbacks = [callback] if run.rollouts is None else [run.rollouts, callback]
            run.model.learn(
                total_timesteps=run.budget - done,
                callback=callbacks,
                reset_num_timesteps=done == 0,
            )
        if not run.history or run.history[-1].get("env_steps") != run.model.num_timesteps:
            callback.evaluate_and_record()  # always an evaluation at the end
        if callback.unsaved:
            _checkpoint(run, callback)  # the final state
    console.print(summary_table(run.history, title))
    if config.reached_stop_return(run.history):
        console.print(f"stopped: the evaluation reached --stop-at-return {config.stop_at_return:g}")
    console.print(f"run directory: {run.dir.path}\nlearning curve: {run.dir.plot_path}")
    return RunResult(run.dir.path, run.history, run.dir.plot_path)


class _EvaluateAndCheckpoint(BaseCallback):
    """Evaluate on the fixed seeds every `eval_every` steps and append the metrics row; write
    the checkpoint at the next point where the loop can be restored exactly.

    SB3 calls `on_step` after the environment stepped but before the transition is stored and
    before the gradient steps, so the state there is not one a run can restart from. The start
    of the next rollout (`on_rollout_start`) is: every transition stored, every update done.
    SB3 resamples the gSDE noise just before that call, so the checkpoint keeps the noise and
    the generators as they are there, and a resumed run puts them back at that same call of
    its first rollout (after its own `learn` set-up drew whatever it drew)."""

    def __init__(self, run: ModelFreeRun, bar: RunProgress, title: str, threshold: float | None):
        super().__init__()
        self.run, self.bar, self.title, self.threshold = run, bar, title, threshold
        self.unsaved = False  # rows recorded since the last checkpoint
        state = (run.loop or {}).get("callback")
        # constrained task: violations since the last evaluation row, in the run, and lambda
        self.cost_since_eval, self.cost_total, self.multiplier = (
            (0.0, 0.0, None) if state is None else state.get("costs", (0.0, 0.0, None))
        )
        if state is not None:
            self.next_eval = state["next_eval"]
            self.episode_returns: list[float] = list(state["episode_returns"])
            self.episodes = state["episodes"]
            saved = state["last_eval"]
            self.last_eval: tuple[int, np.ndarray, np.ndarray] | None = (
                None
                if saved is None
                else (
                    saved[0],
                    np.asarray(saved[1]),
                    np.asarray(saved[2] if len(saved) > 2 else []),
                )
            )
            return
        done = run.model.num_timesteps
        self.next_eval = (done // run.eval_every + 1) * run.eval_every
        self.episode_returns = []
        self.episodes = sum(1 for r in run.history if "event" not in r)
        self.last_eval = None  # (policy updates, returns, costs)

    def state_dict(self) -> dict[str, Any]:
        return {
            "next_eval": self.next_eval,
            "episode_returns": list(self.episode_returns),
            "episodes": self.episodes,
            "last_eval": None
            if self.last_eval is None
            else (self.last_eval[0], self.last_eval[1].tolist(), self.last_eval[2].tolist()),
            "costs": (self.cost_since_eval, self.cost_total, self.multiplier),
        }

    def _on_rollout_start(self) -> None:
        if self.run.loop is not None:  # first rollout of a resumed run
            restore_generators(self.run.model, self.run.loop)
            self.run.loop = None
        elif self.unsaved:
            _checkpoint(self.run, self)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.episode_returns.append(float(info["episode"]["r"]))
            self.cost_since_eval += float(info.get("cost", 0.0))
            self.multiplier = info.get("lagrange_multiplier", self.multiplier)
        self.bar.advance_step(self.training_env.num_envs)
        if self.num_timesteps >= self.next_eval:
            self.evaluate_and_record()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.run.eval_every
            return not self.run.config.reached_stop_return(self.run.history)  # False: stop
        return True

    def evaluate_and_record(self) -> None:
        run = self.run
        self.bar.status("evaluating")
        updates = getattr(run.model, "_n_updates", 0)
        start = time.perf_counter()
        # A shielded policy changes with the model too: evaluated afresh every time.
        shielded = getattr(run.model, "shield", None) is not None
        if not shielded and self.last_eval is not None and self.last_eval[0] == updates:
            _, returns, costs = self.last_eval  # the same policy as at the last evaluation
            reused = True
        else:
            returns, costs = evaluate_model_free(run.model, run.normalizer, run)
            self.last_eval, reused = (updates, returns, costs), False
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
        if run.config.safety.constraint is not None:
            self.cost_total += self.cost_since_eval
            row.update(cost=self.cost_since_eval, cost_total=self.cost_total,
                       eval_cost=float(costs.mean()), eval_costs=costs.tolist())  # fmt: skip
            if run.config.safety.lagrangian:
                row["lagrange_multiplier"] = self.multiplier or 0.0
            self.cost_since_eval = 0.0
        if run.config.safety.shield:
            row.update(_shield_record(run, shielded))
        if run.config.keep_policies:
            run.dir.save_policy(
                row["env_steps"],
                {
                    "actor": run.model.policy.actor.state_dict(),
                    "env_steps": row["env_steps"],
                    "eval_return": row["eval_return"],
                },
            )
        self.episodes += 1
        self.episode_returns = []
        run.history.append(row)
        self.unsaved = True
        run.dir.append_metrics(row)
        plot_learning_curve(run.history, run.dir.plot_path, self.title, self.threshold)
        self.bar.finish_episode(row)
        self.bar.status("acting")


def evaluate_model_free(
    model: BaseAlgorithm, normalizer: VecNormalize | None, run
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic actions on the shared evaluation seeds, all episodes in one batch: each
    episode's return and its summed constraint cost (zeros on an unconstrained task)."""

    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        action, _ = model.predict(obs, deterministic=True)
        return action

    if getattr(model, "shield", None) is not None:  # MBPO's shield is on: evaluate what acts
        from forethought.trainers.mbpo import make_shield

        act = make_shield(run.config, model, run.rollouts, seed=run.config.eval_seed).act
    seeds = [run.config.eval_seed + j for j in range(run.config.eval_episodes)]
    costs = np.zeros(len(seeds))
    return evaluate_batched(run.eval_envs, act, seeds, costs), costs


def _shield_record(run: ModelFreeRun, evaluated_shielded: bool) -> dict[str, Any]:
    """The training shield's overrides since the previous row and in all, and whether this
    evaluation was of the shielded policy; RUN_DIR/shield.jsonl rewritten with every override
    (each with its reason and the env step it happened at)."""
    overrides = run.rollouts.shield.overrides
    before = next(
        (
            r["shield_overrides_total"]
            for r in reversed(run.history)
            if "shield_overrides_total" in r
        ),
        0,
    )
    lines = "".join(json.dumps(o) + "\n" for o in overrides)
    atomic_write_bytes(run.dir.path / "shield.jsonl", lines.encode())
    return {
        "shield_overrides": len(overrides) - before,
        "shield_overrides_total": len(overrides),
        "eval_shielded": evaluated_shielded,
    }


def _checkpoint(run: ModelFreeRun, callback: _EvaluateAndCheckpoint) -> None:
    """One atomically replaced file: the SB3 model (weights, optimisers, counters), the replay
    buffer (MBPO's imagined transitions included), the normaliser, the dynamics model and its
    rollout generators, the metrics, and the loop state (`sb3_state.loop_state`)."""
    model_bytes = io.BytesIO()
    run.model.save(model_bytes)
    state: dict[str, Any] = {"model": model_bytes.getvalue(), "history": run.history}
    if isinstance(run.model, OffPolicyAlgorithm):
        state["replay_buffer"] = pickle.dumps(filled_part(run.model.replay_buffer))
    if run.normalizer is not None:
        state["normalizer"] = pickle.dumps(run.normalizer)
    if run.rollouts is not None:
        state.update(run.rollouts.state_dict())
    state["loop"] = loop_state(run.model, callback.state_dict())
    run.dir.save_checkpoint(state)
    callback.unsaved = False
