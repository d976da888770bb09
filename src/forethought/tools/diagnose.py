"""Compounding-error diagnostics: how fast does the model's open-loop prediction drift away
from reality as the horizon grows, per member and for the ensemble, and does the members'
disagreement grow with it?

From every start state of held-out real trajectories, each member predicts k = 1..K steps ahead
by feeding back its own predictions (mean, no sampling) under the actions that were really taken;
errors are compared with the real states k steps later, in the model's normalised units (each
dimension divided by its target std) so that dimensions are comparable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro

from forethought.agents.build import build_mpc_agent
from forethought.config import TrainConfig
from forethought.errors import ConfigError, require
from forethought.models.uncertainty import member_variance
from forethought.runtime import configure_cpu
from forethought.storage import atomic_write_bytes
from forethought.tasks import make_env, vector_actions
from forethought.trainers.run_dir import RunDir


@dataclass(frozen=True)
class DiagnoseArgs:
    """Open-loop k-step prediction error against horizon for a finished (or running) run."""

    run_dir: tyro.conf.Positional[Path]
    """Run directory written by `forethought train`."""
    episodes: int = 3
    """Held-out real episodes to collect (seeds the run never trained or evaluated on)."""
    horizon: int = 30
    """Largest prediction horizon K."""
    policy: Literal["mpc", "random"] = "mpc"
    """Who acts in the held-out episodes: the run's trained MPC agent, or uniform random actions."""
    seed: int = 5000
    """Held-out episode i resets with seed + i."""

    def validate(self) -> None:
        require(self.episodes >= 1, "episodes", "must be at least 1")
        require(self.horizon >= 1, "horizon", "must be at least 1")


@dataclass
class Diagnosis:
    horizons: list[int]
    member_rmse: list[list[float]]  # E x K
    ensemble_rmse: list[float]  # K: error of the mean of the members' predictions
    disagreement: list[float]  # K: std across members of their predictions
    starts: list[int]  # K: number of start states behind each horizon
    json_path: Path
    plot_path: Path


@torch.no_grad()
def open_loop_errors(
    model, observations: list[np.ndarray], actions: list[np.ndarray], horizon: int
):
    """Per-member squared errors (E x K), ensemble squared errors (K), disagreement variance (K)
    and start counts (K), summed over every start state of every trajectory."""
    e = model.ensemble_size
    device = model.input_mean.device
    scale = model.target_std[: model.obs_dim]
    sums = {
        "member": torch.zeros(e, horizon),
        "ensemble": torch.zeros(horizon),
        "spread": torch.zeros(horizon),
    }
    counts = torch.zeros(horizon)
    for obs, act in zip(observations, actions, strict=True):  # a few trajectories: a short loop
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)  # (T+1) x O
        act_t = torch.as_tensor(act, dtype=torch.float32, device=device)  # T x A
        steps = len(act_t)
        states = obs_t[:steps].expand(e, -1, -1).clone()  # E x T x O, one row per start state
        for k in range(min(horizon, steps)):
            n = steps - k  # start states that still have a real state k+1 steps later
            states = states[:, :n]
            states = model.predict(states, act_t[k : k + n].expand(e, -1, -1)).next_obs_mean
            real = obs_t[k + 1 : k + 1 + n]
            member_sq = (((states - real) / scale) ** 2).mean(-1)  # E x n
            ensemble_sq = (((states.mean(0) - real) / scale) ** 2).mean(-1)  # n
            spread = member_variance(states / scale).mean(-1)  # n
            sums["member"][:, k] += member_sq.sum(1).cpu()
            sums["ensemble"][k] += ensemble_sq.sum().cpu()
            sums["spread"][k] += spread.sum().cpu()
            counts[k] += n
    return sums, counts


def diagnose(args: DiagnoseArgs) -> Diagnosis:
    args.validate()
    run, config = RunDir.open(args.run_dir, flag="RUN_DIR")
    try:
        return _diagnose(args, run, config)
    finally:
        run.close()


def _diagnose(args: DiagnoseArgs, run: RunDir, config: TrainConfig) -> Diagnosis:
    require(
        config.algo == "mpc",
        "RUN_DIR",
        f"{args.run_dir} is an --algo {config.algo} run; diagnose reads the dynamics model of an "
        "--algo mpc run",
    )
    checkpoint = run.load_checkpoint()
    if checkpoint is None:
        raise ConfigError(
            "RUN_DIR", f"{args.run_dir} has no checkpoint yet; let it finish an episode first"
        )
    configure_cpu(config.threads)
    env = vector_actions(make_env(config.env))
    _, model, agent = build_mpc_agent(config, env)
    model.load_state_dict(checkpoint["model"])
    observations, actions = _held_out_episodes(args, env, agent)
    return _measure(args, run, config, model, observations, actions)


def _held_out_episodes(args: DiagnoseArgs, env, agent) -> tuple[list, list]:
    """Real trajectories on seeds the run never trained or evaluated on."""
    rng = np.random.default_rng(args.seed)

    observations, actions = [], []
    for i in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + i)
        agent.reset()
        trajectory, taken = [obs], []
        while True:
            if args.policy == "mpc":
                action = agent.act(obs[None])[0]
            else:
                action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            trajectory.append(obs)
            taken.append(action)
            if terminated or truncated:
                break
        observations.append(np.array(trajectory))
        actions.append(np.array(taken))
    return observations, actions


def _measure(args, run, config, model, observations, actions) -> Diagnosis:
    """Open-loop error by horizon, written next to the run as JSON and a plot."""
    sums, counts = open_loop_errors(model, observations, actions, args.horizon)
    valid = counts > 0
    horizons = [k + 1 for k in range(args.horizon) if valid[k]]
    member_rmse = (sums["member"][:, valid] / counts[valid]).sqrt()
    ensemble_rmse = (sums["ensemble"][valid] / counts[valid]).sqrt()
    disagreement = (sums["spread"][valid] / counts[valid]).sqrt()

    json_path, plot_path = run.path / "diagnose.json", run.path / "diagnose.png"
    result = Diagnosis(
        horizons=horizons,
        member_rmse=member_rmse.tolist(),
        ensemble_rmse=ensemble_rmse.tolist(),
        disagreement=disagreement.tolist(),
        starts=counts[valid].int().tolist(),
        json_path=json_path,
        plot_path=plot_path,
    )
    payload = {k: v for k, v in result.__dict__.items() if not k.endswith("_path")}
    payload.update(
        env=config.env,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        units="normalised RMSE (each state dimension divided by the model's target std)",
    )
    atomic_write_bytes(json_path, json.dumps(payload, indent=2).encode())
    _plot(result, plot_path, f"{config.env}: open-loop prediction error ({args.policy} policy)")
    return result


def _plot(result: Diagnosis, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, member in enumerate(result.member_rmse):
        ax.plot(
            result.horizons,
            member,
            color="tab:blue",
            alpha=0.35,
            lw=1,
            label="each member" if i == 0 else None,
        )
    ax.plot(result.horizons, result.ensemble_rmse, color="tab:blue", lw=2.5, label="ensemble mean")
    ax.plot(
        result.horizons,
        result.disagreement,
        color="tab:orange",
        ls="--",
        lw=2,
        label="members' disagreement (std)",
    )
    ax.set_yscale("log")
    ax.set_xlabel("prediction horizon k (steps, open loop)")
    ax.set_ylabel("normalised RMSE")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
