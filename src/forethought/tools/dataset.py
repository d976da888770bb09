"""`forethought dataset`: logged datasets in Minari's format, made locally.

    collect      run one policy (random, a run directory, a snapshot) for N episodes and save
                 what it did as a Minari dataset
    make-tiers   D4RL's recipe from one SAC run: random, medium (the policy when it had about a
                 third of the final return, normalised between random and final), expert (the
                 final policy), medium-replay (SAC's replay buffer up to the medium policy) and
                 medium-expert (medium and expert together), with the reference returns of the
                 normalised score (random tier, expert tier) stored in every one
    list         the datasets in the local store

Behaviour policies act stochastically when collecting (SAC samples its Gaussian), as D4RL's did;
`--deterministic` collects with the mean action instead.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from forethought.config import TrainConfig
from forethought.data.offline import (
    Episode,
    check_writable,
    datasets_root,
    load_episodes,
    local_dataset_names,
    write_dataset,
)
from forethought.errors import ConfigError, require
from forethought.runtime import configure_cpu
from forethought.storage import load_torch, read_metrics, write_json
from forethought.tasks import make_env
from forethought.tasks.episodes import collect_episodes
from forethought.tools.policies import BatchPolicy, load_policy, policy_snapshots
from forethought.trainers.run_dir import RunDir

TIERS = ("random", "medium", "expert", "medium-replay", "medium-expert")
COLLECT_BATCH = 16  # episodes played in lock-step (one batched policy call per step)


@dataclass(frozen=True)
class CollectArgs:
    """Run a policy for N episodes and save them as a Minari dataset (nothing is downloaded)."""

    name: str
    """Dataset id in Minari's form, e.g. pendulum/medium-v0."""
    env: str = "Pendulum-v1"
    """Gymnasium environment id."""
    policy: str = "random"
    """random, a run directory (sac, td3, mbpo or offline run) or RUN_DIR/policies/step-N.pt."""
    episodes: int = 50
    """Episodes to log."""
    seed: int = 0
    """Episode j resets with seed + j; also seeds the policy's sampling."""
    deterministic: bool = False
    """Log the policy's mean action instead of sampling it."""
    ref_min_score: float | None = None
    """Reference return of a random policy, stored for normalised scores."""
    ref_max_score: float | None = None
    """Reference return of an expert policy, stored for normalised scores."""
    max_episode_steps: int | None = None
    """Override the environment's time limit."""
    overwrite: bool = False
    """Replace a dataset of the same name."""
    threads: int = 1
    """Torch CPU threads."""
    quiet: bool = False
    """No progress bar."""


@dataclass(frozen=True)
class MakeTiersArgs:
    """D4RL-style datasets (random, medium, expert, medium-replay, medium-expert) from one SAC run, trained here first (or reused, or resumed, from --run-dir)."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id."""
    prefix: str | None = None
    """Dataset ids are PREFIX/TIER-v0 (default: the environment's name in lower case, e.g. pendulum)."""
    steps: int = 20_000
    """SAC's training steps (its final policy is the expert)."""
    snapshots: int = 40
    """Policies saved (and evaluated) along SAC's training, candidates for the medium tier."""
    episodes: int = 50
    """Episodes logged per collected tier (random, medium, expert)."""
    medium_fraction: float = 1 / 3
    """The medium policy is the snapshot whose evaluation return is nearest to random + this x (final - random)."""
    run_dir: Path | None = None
    """The SAC run (default: runs/tiers/<env>-sac-seed<seed>); an unfinished one is resumed."""
    seed: int = 0
    """Seed of the SAC run and of the collected episodes."""
    eval_episodes: int = 5
    """Evaluation episodes per snapshot."""
    overwrite: bool = False
    """Replace datasets of the same names."""
    threads: int = 1
    """Torch CPU threads."""
    quiet: bool = False
    """No progress bars."""


@dataclass(frozen=True)
class ListArgs:
    """The datasets in the local Minari store."""


def collect(args: CollectArgs, console: Console) -> Path:
    require(args.episodes >= 1, "episodes", "must be at least 1")
    check_writable(args.name, args.overwrite)
    configure_cpu(args.threads)
    env = make_env(args.env)
    policy = load_policy(
        args.policy, env.action_space, deterministic=args.deterministic, seed=args.seed
    )
    episodes = _play(args.env, policy.act, args.episodes, args.seed, args, console)
    path = write_dataset(
        args.name,
        episodes,
        args.env,
        algorithm=policy.label,
        ref_min_score=args.ref_min_score,
        ref_max_score=args.ref_max_score,
        overwrite=args.overwrite,
    )
    returns = [e.total_reward for e in episodes]
    console.print(
        f"{args.name}: {len(episodes)} episodes, {sum(map(len, episodes))} transitions, "
        f"return {np.mean(returns):.1f} ± {np.std(returns):.1f} ({policy.label}) -> {path}"
    )
    return path


def _play(
    env_id, act: BatchPolicy, episodes, seed, args, console: Console, title: str = ""
) -> list[Episode]:
    """`episodes` episodes of `act`, COLLECT_BATCH at a time, with a progress bar."""
    limit = getattr(args, "max_episode_steps", None)  # collect's override; tiers keep the env's
    kwargs = {} if limit is None else {"max_episode_steps": limit}
    recorded: list[Episode] = []
    with (
        torch.random.fork_rng(devices=[]),
        Progress(console=console, disable=args.quiet) as bar,
    ):
        torch.manual_seed(seed)  # SB3 samples stochastic actions from torch's global stream
        task = bar.add_task(f"logging {env_id} {title}", total=episodes)
        for begin in range(0, episodes, COLLECT_BATCH):
            count = min(COLLECT_BATCH, episodes - begin)
            envs = [make_env(env_id, **kwargs) for _ in range(count)]
            seeds = [seed + begin + j for j in range(count)]
            recorded += collect_episodes(envs, lambda obs, rows: act(obs), seeds)
            bar.advance(task, count)
    return recorded


def list_datasets(console: Console) -> list[str]:
    names = local_dataset_names()
    table = Table(title=f"datasets in {datasets_root()}")
    for column in ("dataset", "episodes", "transitions", "behaviour", "return"):
        table.add_column(column)
    for name in names:
        episodes, dataset = load_episodes(name)
        returns = [e.total_reward for e in episodes]
        table.add_row(
            name,
            str(len(episodes)),
            str(sum(map(len, episodes))),
            str(dataset.storage.metadata.get("algorithm_name")),
            f"{np.mean(returns):.1f}" if returns else "-",
        )
    console.print(table)
    return names


# ---------------------------------------------------------------------------------- make-tiers


def make_tiers(args: MakeTiersArgs, console: Console) -> dict[str, dict]:
    require(args.steps >= 2, "steps", "must be at least 2")
    require(args.snapshots >= 2, "snapshots", "must be at least 2")
    require(args.episodes >= 1, "episodes", "must be at least 1")
    require(0 < args.medium_fraction < 1, "medium_fraction", "must be in (0, 1)")
    prefix = args.prefix or args.env.split("-")[0].lower()
    for tier in TIERS:
        check_writable(f"{prefix}/{tier}-v0", args.overwrite)
    run_dir = _train_behaviour(args, console)
    snapshots = policy_snapshots(run_dir)
    require(len(snapshots) >= 2, "run_dir", f"{run_dir} saved fewer than 2 policies")
    env = make_env(args.env)
    seed = args.seed + 10_000  # collection seeds differ from SAC's training episodes

    def play(source, label: str, offset: int) -> list[Episode]:
        act = load_policy(source, env.action_space, deterministic=False, seed=seed).act
        return _play(args.env, act, args.episodes, seed + offset, args, console, label)

    random_episodes = play("random", "random", 0)
    expert_episodes = play(snapshots[-1], "expert", args.episodes)
    ref_min = float(np.mean([e.total_reward for e in random_episodes]))
    ref_max = float(np.mean([e.total_reward for e in expert_episodes]))
    medium_path = _medium_snapshot(snapshots, ref_min, args.medium_fraction)
    medium_step = int(load_torch(medium_path)["env_steps"])
    medium_episodes = play(medium_path, "medium", 2 * args.episodes)
    tiers = {
        "random": (random_episodes, "random"),
        "medium": (medium_episodes, f"sac@{medium_step}"),
        "expert": (expert_episodes, f"sac@{args.steps}"),
        "medium-replay": (
            _replay_episodes(run_dir, medium_step, env),
            f"sac replay 0-{medium_step}",
        ),
        "medium-expert": (medium_episodes + expert_episodes, f"sac@{medium_step}+sac@{args.steps}"),
    }
    summary = _write_tiers(args, tiers, prefix, ref_min, ref_max, run_dir)
    _print_tiers(console, summary)
    return summary


def _write_tiers(args, tiers, prefix, ref_min, ref_max, run_dir: Path) -> dict[str, dict]:
    """Every tier as a Minari dataset with the reference returns; a summary row for each (also
    written to RUN_DIR/tiers.json)."""
    summary = {}
    for tier, (episodes, behaviour) in tiers.items():
        name = f"{prefix}/{tier}-v0"
        write_dataset(
            name,
            episodes,
            args.env,
            algorithm=behaviour,
            ref_min_score=ref_min,
            ref_max_score=ref_max,
            description=f"forethought dataset make-tiers from {run_dir}",
            overwrite=args.overwrite,
        )
        returns = np.array([e.total_reward for e in episodes])
        summary[name] = {
            "behaviour": behaviour,
            "episodes": len(episodes),
            "transitions": int(sum(map(len, episodes))),
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "normalized_score": float(100 * (returns.mean() - ref_min) / (ref_max - ref_min)),
        }
    write_json(
        run_dir / "tiers.json",
        {"ref_min_score": ref_min, "ref_max_score": ref_max, "tiers": summary},
    )
    return summary


def _train_behaviour(args: MakeTiersArgs, console: Console) -> Path:
    """SAC with a policy snapshot at every evaluation: trained, resumed or reused."""
    from forethought.trainers import resume, train

    run_dir = args.run_dir or Path("runs/tiers") / f"{args.env}-sac-seed{args.seed}"
    config = TrainConfig(
        env=args.env,
        algo="sac",
        steps=args.steps,
        seed=args.seed,
        out=run_dir,
        eval_episodes=args.eval_episodes,
        eval_every_steps=max(1, args.steps // args.snapshots),
        keep_policies=True,
        threads=args.threads,
        quiet=args.quiet,
    )
    if not (run_dir / "config.json").exists():
        train(config, console)
        return run_dir
    _, saved = RunDir.open(run_dir, flag="--run-dir", lock=False)
    if saved.algo != "sac" or not saved.keep_policies:
        raise ConfigError(
            "run_dir", f"{run_dir} is not an --algo sac --keep-policies run; choose another"
        )
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval_return" in r]
    if not rows or rows[-1]["env_steps"] < args.steps:
        resume(run_dir, console, given=config)
    return run_dir


def _medium_snapshot(snapshots: list[Path], ref_min: float, fraction: float) -> Path:
    returns = np.array([load_torch(p)["eval_return"] for p in snapshots])
    target = ref_min + fraction * (returns[-1] - ref_min)
    return snapshots[int(np.argmin(np.abs(returns[:-1] - target)))]


def _replay_episodes(run_dir: Path, steps: int, env) -> list[Episode]:
    """SAC's own experience over its first `steps` environment steps, as episodes (the last
    one cut short is marked truncated)."""
    checkpoint = RunDir(run_dir).load_checkpoint()
    buffer = pickle.loads(checkpoint["replay_buffer"])
    obs = buffer.observations[:steps, 0]
    next_obs = buffer.next_observations[:steps, 0]
    low, high = env.action_space.low, env.action_space.high
    actions = low + 0.5 * (buffer.actions[:steps, 0] + 1.0) * (high - low)  # SAC stores [-1, 1]
    rewards = buffer.rewards[:steps, 0]
    ends = buffer.dones[:steps, 0].astype(bool)
    timeouts = buffer.timeouts[:steps, 0].astype(bool)
    stops = np.flatnonzero(ends)
    if len(stops) == 0 or stops[-1] != steps - 1:
        stops = np.append(stops, steps - 1)
    episodes, begin = [], 0
    for stop in stops:
        rows = slice(begin, stop + 1)
        truncations = timeouts[rows].copy()
        truncations[-1] |= not ends[stop]  # cut by the tier's boundary
        episodes.append(
            Episode(
                observations=np.concatenate([obs[rows], next_obs[stop][None]]).astype(np.float32),
                actions=actions[rows].astype(np.float32),
                rewards=rewards[rows].astype(np.float32),
                terminations=ends[rows] & ~timeouts[rows],
                truncations=truncations,
            )
        )
        begin = stop + 1
    return episodes


def _print_tiers(console: Console, summary: dict[str, dict]) -> None:
    table = Table(title="dataset tiers")
    for column in ("dataset", "behaviour", "episodes", "transitions", "return", "normalised"):
        table.add_column(column)
    for name, row in summary.items():
        table.add_row(
            name,
            row["behaviour"],
            str(row["episodes"]),
            str(row["transitions"]),
            f"{row['return_mean']:.1f} ± {row['return_std']:.1f}",
            f"{row['normalized_score']:.1f}",
        )
    console.print(table)
