"""Offline RL from logged data: normalised scores of our offline methods against the behaviour
that logged the data and behaviour cloning, and the worth of MOPO's pessimism.

Datasets: `forethought dataset make-tiers` on each environment (one SAC run; D4RL's recipe),
stored in benchmarks/.datasets (MINARI_DATASETS_PATH). Per tier (medium, medium-replay) and
seed, one `forethought offline` run per method; the score is the final evaluation (10 episodes on
the shared seeds), normalised 100 x (R - R_random) / (R_expert - R_random) with the dataset's own
reference returns:

    behaviour   the dataset's average episode return (the policy that logged it)
    bc          behaviour cloning
    mopo        SAC on 5-step imagined branches (MOPO's length), reward - lambda x the members'
                disagreement (lambda = 1)
    mopo-p0     the same with lambda = 0: what the pessimism is worth
    mopo-p5     the same with lambda = 5, MOPO's paper's setting for hopper-medium (taken
                from the paper before it was run here; run because mopo failed on that tier)
    mopo-h25    25-step branches (2,000 per refresh instead of 5,000). Chosen after mopo's
                5-step branches failed on Pendulum, by looking at evaluation returns: a choice
                made with the simulator, which a purely offline user would not have
    mopo-h25-p0 the same with lambda = 0
    mopo-h25-p5 the same with lambda = 5 (whether Hopper's penalty hurts on Pendulum)
    morel       MPC in the model; states past the dataset's disagreement quantile are absorbing

    cql, iql,   d3rlpy's model-free offline algorithms with its default settings (TD3+BC with
    td3+bc      state standardisation), the same number of gradient steps, run in d3rlpy's own
                virtual environment (it pins gymnasium 1.0.0; benchmarks/peers/setup_d3rlpy.sh
                makes it) on the same dataset exported to .npz, scored on the same seeds

Writes benchmarks/results/offline.json (every run's numbers and the machine) and offline.png.
Runs are kept under benchmarks/.runs/offline and reused, and a seed the results file already
holds for the same datasets is read from it, not redone (--rerun redoes it): raising --seeds adds
seeds on a fresh machine without repeating the first ones.

Each method's entry is merged into the JSON on disk as soon as one of its seeds finishes, so
environments and methods not run this time (or run by another process) keep theirs; every block
records the machine that ran it. Datasets rebuilt since an environment's results were written (the tiers'
SAC run differs across library versions and across machines whose floating point differs) are
refused in one line: --replace starts that environment's block afresh on them, so no table
mixes runs on two sets of data. To add seeds on another machine, carry benchmarks/.datasets
and benchmarks/.runs/offline/<env>/behaviour-sac along.

    python benchmarks/offline.py --envs Pendulum-v1 --peer-seeds 3   # ~1.6 h on 2 cores (two processes, --methods split)
    python benchmarks/offline.py --envs Hopper-v5 --tiers medium   # SAC 100k for the tiers (35-60 min), then 0.5-1 h per seed (ours)
    python benchmarks/offline.py --envs Hopper-v5 --tiers medium-replay   # once the tiers exist, a second process
    python benchmarks/offline.py --quick --out /tmp/offline.json   # smoke test
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from machine import machine_info

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "offline.json"
RUNS = HERE / ".runs" / "offline"
DATASETS = HERE / ".datasets"
TIERS = ("medium", "medium-replay")
OURS = ("bc", "mopo", "mopo-p0", "mopo-p5", "mopo-h25", "mopo-h25-p0", "mopo-h25-p5", "morel")
PEERS = ("cql", "iql", "td3+bc")
METHODS = OURS + PEERS
MOPO_VARIANTS = {  # method: (rollout length, rollout batch, penalty)
    "mopo": (5, 5_000, 1.0),
    "mopo-p0": (5, 5_000, 0.0),
    "mopo-p5": (5, 5_000, 5.0),
    "mopo-h25": (25, 2_000, 1.0),
    "mopo-h25-p0": (25, 2_000, 0.0),
    "mopo-h25-p5": (25, 2_000, 5.0),
}
SETTINGS = {  # env: (SAC steps for the tiers, offline gradient steps)
    "Pendulum-v1": (20_000, 10_000),
    "Hopper-v5": (100_000, 50_000),
}
DEFAULT_METHODS = {  # the 25-step variants answer a question of Pendulum's (see the docstring)
    "Pendulum-v1": tuple(m for m in METHODS if m != "mopo-p5"),
    "Hopper-v5": ("bc", "mopo", "mopo-p0", "mopo-p5", "morel", *PEERS),
}


def offline_config(env: str, tier: str, method: str, seed: int, steps: int, quick: bool):
    from forethought.trainers.offline_config import MOPOConfig, OfflineConfig

    prefix = env.split("-")[0].lower()
    config = OfflineConfig(
        dataset=f"{prefix}/{tier}-v0",
        algo="mopo" if method.startswith("mopo") else method,
        seed=seed,
        out=RUNS / env / tier / f"{method}-seed{seed}",
        gradient_steps=steps,
        eval_every=max(1, steps // 5),
        eval_episodes=2 if quick else 10,
        quiet=True,
    )
    if method in MOPO_VARIANTS:
        length, batch, penalty = MOPO_VARIANTS[method]
        mopo = MOPOConfig(rollout_length=length, rollout_batch=batch, penalty=penalty)
        config = replace(config, mopo=mopo)
    if quick:
        from forethought.planners.base import PlannerConfig

        config = replace(config, planning=PlannerConfig(horizon=5, population=20, iterations=1))
    return config


def run(config) -> dict:
    from forethought.storage import read_metrics
    from forethought.trainers.offline import resume_offline, train_offline

    start = time.perf_counter()
    if (config.out / "config.json").exists():
        resume_offline(config.out)  # finishes an interrupted run; a finished one is reused
    else:
        train_offline(config)
    rows = read_metrics(config.out / "metrics.jsonl")
    last = rows[-1]
    return {
        "eval_return": last["eval_return"],
        "eval_returns": last["eval_returns"],
        "normalized_score": last["normalized_score"],
        "gradient_steps": last["gradient_steps"],
        "holdout_error": last.get("holdout_error"),
        "curve": [(r["gradient_steps"], r["eval_return"]) for r in rows],
        "seconds_this_call": time.perf_counter() - start,
    }


@contextmanager
def only_trainer(out: Path):
    """Held while this process trains the d3rlpy run that writes `out`: a second process would
    resume the same checkpoint and the two would overwrite each other's."""
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"{out.stem} of {out.parent.parent.name} {out.parent.name} is being trained by "
                "another process; wait for it to finish (or stop it), then run again"
            ) from None
        yield


def run_peer(env: str, tier: str, algo: str, seed: int, steps: int, quick: bool) -> dict:
    """One d3rlpy run in its own venv (cached: a finished run is read back, not redone)."""
    from forethought.data.offline import load_offline_dataset

    prefix = env.split("-")[0].lower()
    out = RUNS / env / tier / f"d3rlpy-{algo}-seed{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with only_trainer(out):
        if not out.exists():
            train_peer(out, env, tier, algo, seed, steps, quick)
    peer = json.loads(out.read_text())
    returns = peer["curve"][-1]["eval_returns"]
    dataset = load_offline_dataset(f"{prefix}/{tier}-v0")
    mean = float(np.mean(returns))
    return {
        "eval_return": mean,
        "eval_returns": returns,
        "normalized_score": float(dataset.normalized_score(mean)),
        "gradient_steps": peer["curve"][-1]["gradient_steps"],
        "curve": [(c["gradient_steps"], float(np.mean(c["eval_returns"]))) for c in peer["curve"]],
        "seconds": peer["seconds"],
        "versions": {"d3rlpy": peer["d3rlpy"], "gymnasium": peer["gymnasium"]},
    }


def train_peer(out: Path, env: str, tier: str, algo: str, seed: int, steps: int, quick: bool):
    """Export the tier for d3rlpy and train one run in its venv; its result lands in `out`."""
    import subprocess

    from forethought.data.offline import load_episodes
    from peers.harness import thread_env

    exported = out.parent / "dataset.npz"
    episodes, _ = load_episodes(f"{env.split('-')[0].lower()}/{tier}-v0")
    # Written aside and moved in whole: another run of this tier may be reading it.
    staging = exported.with_name(f"dataset.{os.getpid()}.npz")
    np.savez(
        staging,
        observations=np.concatenate([e.observations[:-1] for e in episodes]),
        actions=np.concatenate([e.actions for e in episodes]),
        rewards=np.concatenate([e.rewards for e in episodes]),
        terminals=np.concatenate([e.terminations for e in episodes]).astype(np.float32),
        timeouts=np.concatenate([e.truncations & ~e.terminations for e in episodes]).astype(
            np.float32
        ),
    )
    os.replace(staging, exported)
    spec = {
        "dataset": str(exported),
        "env": env,
        "algo": algo,
        "steps": steps,
        "eval_every": max(1, steps // 5),
        "seed": seed,
        "eval_seeds": [1000 + j for j in range(2 if quick else 10)],
    }
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    python = HERE / ".peers" / "d3rlpy-venv" / "bin" / "python"
    subprocess.run(["bash", str(HERE / "peers" / "setup_d3rlpy.sh")], check=True)
    # Progress lines pass through; stderr (gym's deprecation notes) is shown only on failure.
    run = subprocess.run(
        [str(python), str(HERE / "peers" / "d3rlpy_bench.py"), str(spec_path), str(out)],
        env=thread_env(1),
        stderr=subprocess.PIPE,
        text=True,
    )
    if run.returncode != 0:
        raise SystemExit(f"d3rlpy {algo} seed {seed} failed:\n{run.stderr[-2000:]}")


def make_tiers(env: str, sac_steps: int, quick: bool) -> dict:
    from rich.console import Console

    from forethought.storage import read_json
    from forethought.tools.dataset import MakeTiersArgs
    from forethought.tools.dataset import make_tiers as build

    run_dir = RUNS / env / "behaviour-sac"
    summary = run_dir / "tiers.json"
    if not summary.exists():
        args = MakeTiersArgs(
            env=env,
            steps=sac_steps,
            run_dir=run_dir,
            episodes=4 if quick else 50,
            snapshots=4 if quick else 40,
            eval_episodes=2 if quick else 5,
            quiet=True,
            overwrite=True,
        )
        build(args, Console(quiet=True))
    return read_json(summary, "the tiers' summary")


def summarise(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument(
        "--envs", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
        help=f"environments to run (default: {' '.join(SETTINGS)})",
    )  # fmt: skip
    parser.add_argument(
        "--tiers", nargs="+", default=list(TIERS), choices=TIERS,
        help=f"dataset tiers to run (default: {' '.join(TIERS)})",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per method and tier (default 3)"
    )
    parser.add_argument(
        "--peer-seeds",
        type=int,
        default=1,
        help="seeds per d3rlpy method; seeds already in --out are read back, so 2 adds seed 1 "
        "(default 1: CQL takes 11-25 min per run on one core on Pendulum, 90-115 on Hopper)",
    )
    parser.add_argument(
        "--methods", nargs="+", default=None, choices=METHODS,
        help="default: every method but mopo-p5 on Pendulum-v1; bc, mopo, mopo-p0, mopo-p5, morel and d3rlpy's on Hopper-v5",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON path")
    parser.add_argument(
        "--rerun", action="store_true",
        help="run again the seeds the results file already holds for these datasets (default: "
        "read them back, so --seeds 3 adds seeds to a method measured on fewer)",
    )  # fmt: skip
    parser.add_argument(
        "--replace", action="store_true",
        help="start an environment's results afresh when its datasets differ from those they were measured on (default: refuse)",
    )  # fmt: skip
    args = parser.parse_args()
    global RUNS, DATASETS
    if args.quick:
        RUNS = args.out.parent / ".runs-offline"
        DATASETS = args.out.parent / ".datasets"
    os.environ["MINARI_DATASETS_PATH"] = str(DATASETS)
    seeds = 1 if args.quick else args.seeds
    for env in args.envs:
        sac_steps, steps = (600, 200) if args.quick else SETTINGS[env]
        tiers = make_tiers(env, sac_steps, args.quick)
        if not args.replace and (problem := datasets_changed(args.out, env, tiers)):
            raise SystemExit(
                f"error: {problem}; pass --replace to measure every method afresh, or bring "
                "back the datasets it was measured on (benchmarks/.datasets and "
                f"benchmarks/.runs/offline/{env}/behaviour-sac)"
            )
        for tier in args.tiers:
            name = f"{env.split('-')[0].lower()}/{tier}-v0"
            behaviour = tiers["tiers"][name]
            _save(args.out, args.quick, env, tiers, tier, "behaviour", {
                "normalized_score": summarise([behaviour["normalized_score"]]),
                "return": summarise([behaviour["return_mean"]]),
            })  # fmt: skip
            for method in args.methods or DEFAULT_METHODS[env]:
                recorded = {} if args.rerun else recorded_runs(args.out, env, tiers, tier, method)
                save = partial(_save, args.out, args.quick, env, tiers, tier, method)
                score_method(env, tier, method, seeds, steps, args, recorded, save)
    plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


def score_method(
    env: str, tier: str, method: str, seeds: int, steps: int, args, recorded: dict, save
) -> None:
    """One method's runs on one tier, `save`d after every seed so that a killed benchmark keeps
    the seeds it finished. Seeds in `recorded` (the results file's runs on these same datasets)
    and finished run directories are read back, not redone."""
    runs = {}
    for seed in range(min(seeds, args.peer_seeds) if method in PEERS else seeds):
        if seed in recorded:
            runs[seed] = recorded[seed]
        elif method in PEERS:
            runs[seed] = run_peer(env, tier, method, seed, steps, args.quick)
        else:
            runs[seed] = run(offline_config(env, tier, method, seed, steps, args.quick))
        score = runs[seed]["normalized_score"]
        print(
            f"{env} {tier} {method} seed {seed}: {runs[seed]['eval_return']:.1f} ({score:.1f})",
            flush=True,
        )
        save({
            "normalized_score": summarise([r["normalized_score"] for r in runs.values()]),
            "return": summarise([r["eval_return"] for r in runs.values()]),
            "runs": runs,
        })  # fmt: skip


def recorded_runs(path: Path, env: str, tiers: dict, tier: str, method: str) -> dict:
    """The runs by seed that `path` holds for one method on one tier of these datasets."""
    block = json.loads(path.read_text())["environments"].get(env) if path.exists() else None
    if block is None or block["tiers"] != tiers:
        return {}
    entry = block["scores"].get(tier, {}).get(method, {})
    return {int(seed): run for seed, run in entry.get("runs", {}).items()}


def datasets_changed(path: Path, env: str, tiers: dict) -> str | None:
    """Why `env`'s results in `path` were measured on other datasets than `tiers`, or None."""
    block = json.loads(path.read_text())["environments"].get(env) if path.exists() else None
    if block is None or block["tiers"] == tiers:
        return None
    old, new = block["tiers"], tiers
    return (
        f"{env}'s datasets differ from those of its results in {path} (reference returns "
        f"{old['ref_min_score']:.1f} to {old['ref_max_score']:.1f} there, "
        f"{new['ref_min_score']:.1f} to {new['ref_max_score']:.1f} now)"
    )


def _save(path: Path, quick: bool, env: str, tiers: dict, tier: str, method: str, entry: dict):
    """Put one method's entry into the results file as it is on disk now, so that runs of other
    environments or methods (earlier, or in another process: the read and write hold a lock)
    keep theirs. An environment whose datasets changed starts a fresh block; every block
    records the machine that ran it."""
    from forethought.storage import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {"environments": {}}
        machine = results.pop("machine", None)  # a file from before the blocks had their own
        for other in results["environments"].values():
            other.setdefault("machine", machine)
        results["quick"] = quick
        block = results["environments"].get(env)
        if block is None or block.get("tiers") != tiers:
            block = results["environments"][env] = {"tiers": tiers, "scores": {}}
        block["machine"] = machine_info()
        block["scores"].setdefault(tier, {})[method] = entry
        write_json(path, results)


def plot(results: dict, path: Path) -> None:
    envs = results["environments"]
    fig, axes = plt.subplots(1, len(envs), figsize=(7 * len(envs), 4.2), dpi=110, squeeze=False)
    for ax, (env, data) in zip(axes[0], envs.items(), strict=True):
        tiers = list(data["scores"])
        methods = [m for m in ("behaviour", *METHODS) if any(m in data["scores"][t] for t in tiers)]
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):  # a method not run on a tier leaves a gap (NaN)
            scores = [data["scores"][t].get(method, {}).get("normalized_score", {}) for t in tiers]
            means = [score.get("mean", np.nan) for score in scores]
            stds = [score.get("std", np.nan) for score in scores]
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(tiers))]
            ax.bar(xs, means, width, yerr=stds, capsize=3, label=method)
        ax.set_xticks(range(len(tiers)), tiers)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylabel("normalised score (0 random, 100 expert)")
        seeds = max(
            len(entry.get("runs", {}))
            for table in data["scores"].values()
            for entry in table.values()
        )
        ax.set_title(f"{env}: offline, mean ± std over seeds (at most {seeds})")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
