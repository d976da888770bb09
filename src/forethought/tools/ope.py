"""`forethought ope`: estimate what policies would earn, from a logged dataset alone, before
any of them acts.

Two estimators of the discounted return sum_t gamma^t r_t from the dataset's start states:

    model   fit the dynamics ensemble (reward included) on the dataset, then roll every policy
            out in every member separately from the logged start states for `horizon` steps;
            the estimate is the mean over members and starts, the interval the lowest and highest
            member (how much the ensemble's own uncertainty moves the answer)
    fqe     fitted Q evaluation: regress Q(s, a) on r + gamma Q'(s', pi(s')) over the logged
            transitions, Q' a copy of Q refreshed every `fqe_target_every` steps (each refresh
            one Bellman backup) and clipped to the returns the logged rewards allow, then average Q(s0, pi(s0)) over
            the start states; it bootstraps through time-limit cuts, so it values an unending
            episode, while the truth and the model stop at the time limit

Where the environment exists the true discounted return (deterministic actions, `true_episodes`
episodes on the shared evaluation seeds) is reported next to each estimate, with each method's
absolute error and the Spearman rank correlation between estimated and true returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import nn

from forethought.data.offline import OfflineDataset, check_spaces_match, load_offline_dataset
from forethought.errors import ConfigError, require
from forethought.models import DynamicsModel, ModelConfig
from forethought.models.fitting import FitConfig
from forethought.reporting.plots import save_figure
from forethought.runtime import configure_cpu
from forethought.storage import write_json
from forethought.tasks import get_task, make_env
from forethought.tools.policies import BatchPolicy, LoadedPolicy, load_policy
from forethought.trainers.offline import dataset_model, fit_on_dataset

Estimator = Literal["model", "fqe"]


@dataclass(frozen=True)
class OPEArgs:
    """Estimate policies' discounted returns from a logged dataset alone (model-based rollouts and fitted Q evaluation), next to their true returns where the environment exists."""

    dataset: str
    """Minari dataset id in the local store."""
    policy: tuple[str, ...]
    """Policies to evaluate: random, run directories, RUN_DIR/policies/step-N.pt snapshots."""
    estimators: tuple[Estimator, ...] = ("model", "fqe")
    """Which estimators to run."""
    gamma: float = 0.99
    """Discount of the estimated return."""
    horizon: int | None = None
    """Model rollout length (default: the dataset's longest episode)."""
    starts: int = 100
    """Logged start states used (all of them when the dataset has fewer episodes)."""
    fqe_steps: int = 10_000
    """FQE gradient steps per policy."""
    fqe_target_every: int = 20
    """FQE copies Q into its target every this many steps: fqe_steps / fqe_target_every Bellman backups (gamma^backups must be small)."""
    fqe_hidden: int = 256
    """Width of FQE's two hidden layers."""
    fqe_learning_rate: float = 1e-3
    """FQE's Adam learning rate."""
    true_episodes: int = 10
    """Real episodes per policy for the true return (0: do not run the environment)."""
    eval_seed: int = 1000
    """Real episode j resets with seed eval_seed + j."""
    env: str | None = None
    """Environment for the true return (default: the dataset's)."""
    seed: int = 0
    """Seed for the model, FQE and the rollouts."""
    out: Path = Path("ope.json")
    """Results JSON (a scatter plot of estimated against true return is written next to it)."""
    threads: int = 1
    """Torch CPU threads."""
    quiet: bool = False
    """No progress bar or table."""
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)


def run_ope(args: OPEArgs, console: Console) -> dict:
    _validate(args)
    configure_cpu(args.threads)
    dataset = load_offline_dataset(args.dataset)
    env_id = args.env or dataset.env_id
    if env_id is not None:
        check_spaces_match(dataset, make_env(env_id), env_id)
    policies = [
        load_policy(p, dataset.action_space, deterministic=True, seed=args.seed)
        for p in args.policy
    ]
    starts = _start_states(dataset, args)
    model = _fit_model(dataset, args, env_id) if "model" in args.estimators else None
    horizon = args.horizon or int(dataset.episode_lengths.max())
    rows = []
    with Progress(console=console, disable=args.quiet) as bar:
        task = bar.add_task("off-policy evaluation", total=len(policies))
        for source, policy in zip(args.policy, policies, strict=True):
            row: dict = {"policy": str(source), "label": policy.label}
            if model is not None:
                row["model"] = model_estimate(model, policy.act, starts, horizon, args, env_id)
            if "fqe" in args.estimators:
                row["fqe"] = fqe_estimate(dataset, policy.act, starts, args)
            if env_id is not None and args.true_episodes > 0:  # a fresh copy: its own stream
                fresh = load_policy(
                    source, dataset.action_space, deterministic=True, seed=args.seed
                )
                row["true"] = true_return(env_id, fresh, args)
            rows.append(row)
            bar.advance(task)
    result = {"dataset": args.dataset, "gamma": args.gamma, "horizon": horizon, "policies": rows}
    result["summary"] = summarise(rows, args.estimators)
    write_json(args.out, result)
    if any("true" in r for r in rows):
        _plot(rows, args.estimators, args.out.with_suffix(".png"), args.dataset)
    if not args.quiet:
        _print(console, result, args)
    return result


def _validate(args: OPEArgs) -> None:
    require(len(args.policy) >= 1, "policy", "name at least one policy")
    require(len(args.estimators) >= 1, "estimators", "choose model, fqe or both")
    require(0 < args.gamma <= 1, "gamma", "must be in (0, 1]")
    require(args.starts >= 1, "starts", "must be at least 1")
    require(args.fqe_steps >= 1, "fqe_steps", "must be at least 1")
    require(args.fqe_target_every >= 1, "fqe_target_every", "must be at least 1")
    require(args.true_episodes >= 0, "true_episodes", "must be 0 or more")
    if args.horizon is not None:
        require(args.horizon >= 1, "horizon", "must be at least 1")
    if args.gamma == 1 and "fqe" in args.estimators:
        raise ConfigError("gamma", "must be below 1 for fqe (an undiscounted Q need not converge)")


def _start_states(dataset: OfflineDataset, args: OPEArgs) -> np.ndarray:
    rng = np.random.default_rng(args.seed)
    n = len(dataset.start_obs)
    pick = rng.choice(n, size=min(n, args.starts), replace=False)
    return dataset.start_obs[np.sort(pick)]


def _fit_model(dataset: OfflineDataset, args: OPEArgs, env_id: str | None) -> DynamicsModel:
    model = dataset_model(dataset, args.model, env_id, args.seed)
    fit_on_dataset(model, dataset, args.fit, args.seed)
    return model.eval()


@torch.no_grad()
def model_estimate(model, act: BatchPolicy, starts, horizon: int, args: OPEArgs, env_id) -> dict:
    """Every member rolls every start out on its own (E x N trajectories in one batch)."""
    termination_fn = get_task(env_id).termination_fn if env_id else None
    generator = torch.Generator().manual_seed(args.seed)
    e, n = model.ensemble_size, len(starts)
    obs = torch.as_tensor(starts, dtype=torch.float32).expand(e, n, -1).clone()
    total = torch.zeros(e, n)
    alive = torch.ones(e, n, dtype=torch.bool)
    for t in range(horizon):
        action = torch.as_tensor(act(obs.reshape(e * n, -1).numpy())).reshape(e, n, -1)
        pred = model.predict(obs, action)
        noise = torch.randn(pred.next_obs_mean.shape, generator=generator)
        next_obs = pred.next_obs_mean + pred.next_obs_var.sqrt() * noise
        total += torch.where(alive, args.gamma**t * pred.reward, 0.0)
        if termination_fn is not None:
            alive &= ~termination_fn(next_obs)
        elif pred.terminated_logit is not None:
            alive &= ~(pred.terminated_logit > 0)
        obs = next_obs
    per_member = total.mean(dim=1)
    return {
        "estimate": float(per_member.mean()),
        "low": float(per_member.min()),
        "high": float(per_member.max()),
        "per_member": per_member.tolist(),
    }


def fqe_estimate(dataset: OfflineDataset, act: BatchPolicy, starts, args: OPEArgs) -> dict:
    """Fitted Q evaluation of `act` on the logged transitions."""
    start_time = time.perf_counter()
    data = dataset.transitions
    obs = torch.as_tensor(data.obs)
    action = torch.as_tensor(data.action)
    reward = torch.as_tensor(data.reward)
    next_obs = torch.as_tensor(data.next_obs)
    next_action = torch.as_tensor(act(data.next_obs))  # the policy's choices, computed once
    continues = torch.as_tensor(~data.terminated, dtype=torch.float32)
    scale = float(reward.abs().mean().clamp_min(1e-6))  # regress in units of a typical reward
    stats = (obs.mean(0), obs.std(0).clamp_min(1e-6))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        q = _QNetwork(obs.shape[1] + action.shape[1], args.fqe_hidden, stats)
        target = _QNetwork(obs.shape[1] + action.shape[1], args.fqe_hidden, stats)
    target.load_state_dict(q.state_dict())
    optimizer = torch.optim.Adam(q.parameters(), lr=args.fqe_learning_rate)
    generator = torch.Generator().manual_seed(args.seed)
    # No discounted return can leave [min r, max r] / (1 - gamma): clipping the targets there
    # keeps Q from extrapolating without bound at actions the data never took.
    low, high = (float(x) / scale / (1 - args.gamma) for x in (reward.min(), reward.max()))
    loss = torch.zeros(())
    for step in range(args.fqe_steps):
        rows = torch.randint(len(obs), (256,), generator=generator)
        with torch.no_grad():
            bootstrap = target(next_obs[rows], next_action[rows]).squeeze(-1)
            y = reward[rows] / scale + args.gamma * continues[rows] * bootstrap.clamp(low, high)
        loss = ((q(obs[rows], action[rows]).squeeze(-1) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % args.fqe_target_every == 0:  # one more backup of the Bellman operator
            target.load_state_dict(q.state_dict())
    with torch.no_grad():
        s0 = torch.as_tensor(starts)
        value = q(s0, torch.as_tensor(act(starts))).squeeze(-1) * scale
    return {
        "estimate": float(value.mean()),
        "final_loss": float(loss.detach()),
        "seconds": time.perf_counter() - start_time,
    }


class _QNetwork(nn.Module):
    def __init__(self, inputs: int, hidden: int, obs_stats):
        super().__init__()
        self.obs_mean, self.obs_std = obs_stats
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([(obs - self.obs_mean) / self.obs_std, action], dim=-1))


def true_return(env_id: str, policy: LoadedPolicy, args: OPEArgs) -> dict:
    """Discounted and plain returns of real episodes (batched, shared evaluation seeds)."""
    envs = [make_env(env_id) for _ in range(args.true_episodes)]
    obs = np.stack([env.reset(seed=args.eval_seed + j)[0] for j, env in enumerate(envs)])
    discounted = np.zeros(len(envs))
    plain = np.zeros(len(envs))
    active = np.ones(len(envs), dtype=bool)
    t = 0
    while active.any():
        rows = np.flatnonzero(active)
        actions = policy.act(obs[rows])
        for row, action in zip(rows, actions, strict=True):
            next_obs, reward, terminated, truncated, _ = envs[row].step(action)
            discounted[row] += args.gamma**t * float(reward)
            plain[row] += float(reward)
            obs[row] = next_obs
            active[row] = not (terminated or truncated)
        t += 1
    return {"discounted": float(discounted.mean()), "return": float(plain.mean())}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r

    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def summarise(rows: list[dict], estimators) -> dict:
    """Per estimator, over the rows with a true return: mean absolute error and Spearman rank
    correlation of the estimates against the truth."""
    scored = [r for r in rows if "true" in r]
    if not scored:
        return {}
    truth = np.array([r["true"]["discounted"] for r in scored])
    summary = {}
    for name in estimators:
        estimate = np.array([r[name]["estimate"] for r in scored])
        summary[name] = {
            "mean_absolute_error": float(np.abs(estimate - truth).mean()),
            "rank_correlation": spearman(estimate, truth) if len(scored) > 1 else None,
            "policies": len(scored),
        }
    return summary


def _plot(rows, estimators, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    scored = [r for r in rows if "true" in r]
    truth = np.array([r["true"]["discounted"] for r in scored])
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    for name, marker in zip(estimators, "os", strict=False):
        estimate = np.array([r[name]["estimate"] for r in scored])
        ax.scatter(truth, estimate, marker=marker, label=name)
        if name == "model":
            low = estimate - np.array([r[name]["low"] for r in scored])
            high = np.array([r[name]["high"] for r in scored]) - estimate
            ax.errorbar(truth, estimate, yerr=[low, high], fmt="none", alpha=0.4)
    span = [min(truth.min(), ax.get_ylim()[0]), max(truth.max(), ax.get_ylim()[1])]
    ax.plot(span, span, color="0.5", ls="--", label="estimate = truth")
    ax.set_xlabel("true discounted return")
    ax.set_ylabel("estimated from the dataset")
    ax.set_title(f"off-policy evaluation on {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _print(console: Console, result: dict, args: OPEArgs) -> None:
    table = Table(title=f"off-policy evaluation on {args.dataset} (discounted, gamma {args.gamma})")
    table.add_column("policy")
    if "model" in args.estimators:
        table.add_column("model [members]", justify="right")
    if "fqe" in args.estimators:
        table.add_column("fqe", justify="right")
    table.add_column("true", justify="right")
    for row in result["policies"]:
        cells = [row["label"]]
        if "model" in row:
            m = row["model"]
            cells.append(f"{m['estimate']:.1f} [{m['low']:.1f}, {m['high']:.1f}]")
        if "fqe" in row:
            cells.append(f"{row['fqe']['estimate']:.1f}")
        cells.append(f"{row['true']['discounted']:.1f}" if "true" in row else "-")
        table.add_row(*cells)
    console.print(table)
    for name, s in result["summary"].items():
        rho = s["rank_correlation"]
        console.print(
            f"{name}: mean absolute error {s['mean_absolute_error']:.1f}, rank correlation "
            + ("-" if rho is None else f"{rho:.2f}")
            + f" over {s['policies']} policies"
        )
    console.print(f"json: {args.out}")
