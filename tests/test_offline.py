"""Offline model-based RL: datasets in Minari's format, learning from them alone, and bad data."""

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from minari.data_collector.episode_buffer import EpisodeBuffer
from rich.console import Console

from forethought.cli import main
from forethought.data.offline import (
    load_episodes,
    load_offline_dataset,
    write_dataset,
)
from forethought.errors import DataError
from forethought.models import ModelConfig
from forethought.models.fitting import FitConfig
from forethought.rollout import RolloutConfig
from forethought.storage import read_metrics
from forethought.tasks import make_env
from forethought.tasks.episodes import collect_episodes
from forethought.tools.dataset import TIERS
from forethought.trainers.offline import train_offline
from forethought.trainers.offline_config import MOPOConfig, OfflineConfig

SMALL_MODEL = ModelConfig(ensemble_size=2, hidden_size=32)
QUICK_FIT = FitConfig(max_epochs=5)


@pytest.fixture(autouse=True)
def dataset_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def energy_policy(obs: np.ndarray) -> np.ndarray:
    """A fixed behaviour: push with the angular velocity (pumps energy into the swing)."""
    return np.clip(2.0 * np.sign(obs[:, 2:3]), -2, 2).astype(np.float32)


def logged(name="pendulum/test-v0", episodes=4, steps=50, policy=energy_policy):
    envs = [make_env("Pendulum-v1", max_episode_steps=steps) for _ in range(episodes)]
    recorded = collect_episodes(envs, lambda obs, rows: policy(obs), list(range(episodes)))
    write_dataset(
        name, recorded, "Pendulum-v1", algorithm="test", ref_min_score=-1000.0, ref_max_score=-100.0
    )
    return recorded


def quick_config(tmp_path, algo, **overrides):
    settings = dict(
        dataset="pendulum/test-v0",
        algo=algo,
        out=tmp_path / f"run-{algo}",
        gradient_steps=60,
        eval_every=30,
        eval_episodes=2,
        quiet=True,
        model=SMALL_MODEL,
        fit=QUICK_FIT,
        mopo=MOPOConfig(rollout_batch=64, rollout_every=20, batch_size=32, hidden_size=32),
    )
    settings.update(overrides)
    return OfflineConfig(**settings)


def test_a_dataset_round_trips_through_minari():
    recorded = logged()
    dataset = minari.load_dataset("pendulum/test-v0")  # Minari's own reader
    assert dataset.total_episodes == 4 and dataset.total_steps == sum(map(len, recorded))
    for episode, ours in zip(dataset.iterate_episodes(), recorded, strict=True):
        np.testing.assert_allclose(episode.observations, ours.observations)
        np.testing.assert_allclose(episode.actions, ours.actions)
        np.testing.assert_allclose(episode.rewards, ours.rewards, rtol=1e-6)
        assert (episode.truncations == ours.truncations).all()
    loaded = load_offline_dataset("pendulum/test-v0")
    assert loaded.env_id == "Pendulum-v1" and len(loaded.transitions) == 200
    np.testing.assert_allclose(loaded.transitions.next_obs[:49], loaded.transitions.obs[1:50])
    assert loaded.transitions.truncated.sum() == 4 and not loaded.transitions.terminated.any()
    np.testing.assert_allclose(loaded.normalized_score(-550.0), 50.0)


def test_a_float64_observation_space_round_trips(dataset_store):
    """Hopper's observations are float64: the arrays take the dtypes of the env's spaces."""
    rng = np.random.default_rng(0)
    envs = [make_env("Hopper-v5", max_episode_steps=30) for _ in range(2)]
    recorded = collect_episodes(envs, lambda obs, rows: rng.uniform(-1, 1, (len(obs), 3)), [0, 1])
    write_dataset("hopper/test-v0", recorded, "Hopper-v5", algorithm="random")
    episodes, _ = load_episodes("hopper/test-v0")
    for episode, ours in zip(episodes, recorded, strict=True):
        np.testing.assert_array_equal(episode.observations, ours.observations)
        np.testing.assert_allclose(episode.actions, ours.actions, rtol=1e-6)
        assert (episode.terminations == ours.terminations).all()


def test_bad_datasets_are_one_line_errors(dataset_store):
    with pytest.raises(DataError, match="no dataset 'pendulum/missing-v0'"):
        load_offline_dataset("pendulum/missing-v0")
    minari.create_dataset_from_buffers(
        "pendulum/empty-v0", [], env="Pendulum-v1", data_format="arrow"
    )
    with pytest.raises(DataError, match="is empty"):
        load_offline_dataset("pendulum/empty-v0")
    bad = np.zeros((4, 3), np.float32)
    bad[2, 1] = np.nan
    buffer = EpisodeBuffer(
        id=0,
        observations=bad,
        actions=np.zeros((3, 1), np.float32),
        rewards=np.zeros(3),
        terminations=np.zeros(3, bool),
        truncations=np.array([False, False, True]),
    )
    minari.create_dataset_from_buffers(
        "pendulum/nan-v0", [buffer], env="Pendulum-v1", data_format="arrow"
    )
    with pytest.raises(DataError, match="non-finite observations"):
        load_offline_dataset("pendulum/nan-v0")
    with pytest.raises(DataError, match="no transitions"):
        write_dataset("pendulum/none-v0", [], "Pendulum-v1", algorithm="x")


def test_the_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    logged()
    assert main(["offline", "--dataset", "pendulum/nope-v0", "--out", str(tmp_path / "a")]) == 2
    assert "no dataset 'pendulum/nope-v0'" in capsys.readouterr().out
    args = ["offline", "--dataset", "pendulum/test-v0", "--env", "MountainCarContinuous-v0"]
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    assert "logged on another environment" in capsys.readouterr().out
    assert main(["offline", "--out", str(tmp_path / "c")]) == 2
    assert "--dataset: name a dataset" in capsys.readouterr().out
    assert main(["dataset", "collect", "--name", "no version", "--episodes", "1"]) == 2
    assert "not a Minari dataset id" in capsys.readouterr().out
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("algo", ["bc", "mopo", "morel"])
def test_offline_learning_never_steps_the_environment(tmp_path, monkeypatch, algo):
    logged()
    calls = []
    original = PendulumEnv.step
    monkeypatch.setattr(
        PendulumEnv, "step", lambda self, a: (calls.append(1), original(self, a))[1]
    )
    overrides = (
        {"planning": _tiny_planning(), "rollout": RolloutConfig(particles=4)}
        if algo == "morel"
        else {}
    )
    result = train_offline(quick_config(tmp_path, algo, eval_episodes=0, **overrides))
    assert calls == [] and result.history[-1]["eval_return"] is None
    # With evaluation on, every step taken is an evaluation step (2 episodes x 200 per round).
    rounds = train_offline(quick_config(tmp_path, algo, out=tmp_path / "eval", **overrides)).history
    assert len(calls) == 2 * 200 * len(rounds)


def _tiny_planning():
    from forethought.planners.base import PlannerConfig

    return PlannerConfig(horizon=5, population=20, iterations=1)


def test_behaviour_cloning_copies_the_behaviour(tmp_path):
    logged(episodes=8, steps=100)
    config = quick_config(tmp_path, "bc", gradient_steps=1500, eval_every=1500, eval_episodes=0)
    from forethought.trainers.offline import load_offline_policy

    train_offline(config)
    act, label = load_offline_policy(config.out)
    space = gym.make("Pendulum-v1").observation_space
    space.seed(0)  # the same probe states every run: an unseeded draw made the test flaky
    obs = np.stack([space.sample() for _ in range(200)])
    obs[:, 2] += np.sign(obs[:, 2]) * 0.5  # away from the sign flip at zero velocity
    agree = np.mean(np.sign(act(obs)) == np.sign(energy_policy(obs)))
    assert label == "bc (run-bc)" and agree > 0.95


@pytest.mark.slow  # ~37 s: a kill at a random moment of an offline run, resumed
def test_an_offline_run_killed_mid_training_resumes_to_the_same_result(tmp_path, dataset_store):
    logged()
    args = [
        "offline", "--dataset", "pendulum/test-v0", "--algo", "mopo", "--gradient-steps", "400",
        "--eval-every", "50", "--eval-episodes", "1", "--quiet", "--model.ensemble-size", "2",
        "--model.hidden-size", "32", "--fit.max-epochs", "5", "--mopo.rollout-batch", "64",
        "--mopo.rollout-every", "40", "--mopo.batch-size", "32", "--mopo.hidden-size", "32",
    ]  # fmt: skip
    env = {**os.environ, "MINARI_DATASETS_PATH": str(dataset_store)}
    command = [sys.executable, "-m", "forethought.cli"]
    subprocess.run([*command, *args, "--out", str(tmp_path / "whole")], env=env, check=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, *args, "--out", str(killed)], env=env)
    deadline = time.time() + 120
    while len(read_metrics(killed / "metrics.jsonl")) < 3 and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(read_metrics(killed / "metrics.jsonl"))
    assert 3 <= done < 8, "the kill must land mid-run"
    subprocess.run([*command, "offline", "--resume", str(killed), "--quiet"], env=env, check=True)
    whole, resumed = (
        read_metrics(tmp_path / "whole/metrics.jsonl"),
        read_metrics(killed / "metrics.jsonl"),
    )
    drop = ("train_seconds", "eval_seconds", "fit_seconds", "cpu_seconds")
    strip = [
        [{k: v for k, v in r.items() if k not in drop} for r in rows] for rows in (whole, resumed)
    ]
    assert strip[0] == strip[1]


def test_spearman_rank_correlation():
    from forethought.tools.ope import spearman

    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(0.866, abs=1e-3)


def test_off_policy_evaluation_reports_estimates_next_to_the_truth(tmp_path, capsys):
    from forethought.tools.ope import OPEArgs, run_ope

    logged(episodes=6, steps=60)
    bc = quick_config(tmp_path, "bc", gradient_steps=300, eval_every=300, eval_episodes=0)
    train_offline(bc)
    args = OPEArgs(
        dataset="pendulum/test-v0",
        policy=("random", str(bc.out)),
        fqe_steps=100,
        true_episodes=2,
        out=tmp_path / "ope.json",
        quiet=True,
        model=SMALL_MODEL,
        fit=QUICK_FIT,
    )
    result = run_ope(args, Console(quiet=True))
    labels = [row["label"] for row in result["policies"]]
    assert labels == ["random", "bc (run-bc)"]
    for row in result["policies"]:
        model = row["model"]
        assert model["low"] <= model["estimate"] <= model["high"]
        assert np.isfinite(row["fqe"]["estimate"]) and row["true"]["discounted"] < 0
    assert set(result["summary"]) == {"model", "fqe"}
    assert (tmp_path / "ope.png").exists()
    assert main(["ope", "--dataset", "pendulum/test-v0", "--policy", "random", "--gamma", "1"]) == 2
    assert "--gamma: must be below 1 for fqe" in capsys.readouterr().out
    assert main(["ope", "--dataset", "pendulum/test-v0", "--policy", str(tmp_path)]) == 2
    assert "neither 'random', a run directory" in capsys.readouterr().out


def test_make_tiers_builds_every_tier_from_one_sac_run(tmp_path):
    from forethought.data.offline import load_episodes
    from forethought.tools.dataset import MakeTiersArgs, make_tiers

    args = MakeTiersArgs(
        steps=400, snapshots=4, episodes=2, eval_episodes=1, run_dir=tmp_path / "sac", quiet=True
    )
    summary = make_tiers(args, Console(quiet=True))
    assert list(summary) == [f"pendulum/{t}-v0" for t in TIERS]
    medium = summary["pendulum/medium-v0"]["behaviour"]
    step = int(medium.split("@")[1])
    assert step in (100, 200, 300)  # a snapshot before the final policy
    replay, dataset = load_episodes("pendulum/medium-replay-v0")
    assert sum(map(len, replay)) == step  # SAC's own first `step` transitions
    for a, b in zip(replay[0].observations[1:], replay[0].observations[:-1], strict=False):
        assert not np.array_equal(a, b)
    assert dataset.storage.metadata["ref_min_score"] == pytest.approx(
        summary["pendulum/random-v0"]["return_mean"]
    )
    both = summary["pendulum/medium-expert-v0"]["episodes"]
    assert both == 4 and summary["pendulum/expert-v0"]["normalized_score"] == pytest.approx(100)
    with pytest.raises(DataError, match="already exists"):
        make_tiers(args, Console(quiet=True))
