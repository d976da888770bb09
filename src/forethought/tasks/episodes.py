"""Running a policy in real environments: one training episode, or many evaluation episodes in
lock-step so the planner serves them all in one batched call per step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from forethought.data.offline import Episode
from forethought.tasks.base import check_finite_obs

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (B x O obs, B row ids) -> B x A actions
StepHook = Callable[[int, np.ndarray, np.ndarray, float, np.ndarray, bool, bool], None]


@dataclass
class EpisodeResult:
    episode_return: float
    steps: int
    ms_per_action: list[float]
    cost: float = 0.0  # summed info["cost"] (constrained tasks; 0 elsewhere)


def run_episode(
    env: gym.Env, policy: Policy, seed: int, on_step: StepHook, first_step: int = 0
) -> EpisodeResult:
    """Play one episode; `on_step(t, obs, action, reward, next_obs, terminated, truncated)` is
    called for every transition before the next action is chosen (this is where it is logged)."""
    obs, _ = env.reset(seed=seed)
    check_finite_obs(obs, first_step, "reset")
    total, cost, t, timings = 0.0, 0.0, 0, []
    while True:
        start = time.perf_counter()
        action = policy(obs[None], np.zeros(1, dtype=np.int64))[0]
        timings.append(1000 * (time.perf_counter() - start))
        next_obs, reward, terminated, truncated, info = env.step(action)
        check_finite_obs(next_obs, first_step + t + 1, "step")
        cost += float(info.get("cost", 0.0))
        on_step(t, obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
        total += float(reward)
        t += 1
        obs = next_obs
        if terminated or truncated:
            return EpisodeResult(total, t, timings, cost)


def evaluate_batched(
    envs: list[gym.Env], policy: Policy, seeds: list[int], costs: np.ndarray | None = None
) -> np.ndarray:
    """Returns of len(envs) episodes, env j reset with seeds[j]; the policy sees the observations
    of all still-running episodes at once, with their row ids. `costs`, if given, receives each
    episode's summed info["cost"]."""
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    check_finite_obs(obs, 0, "evaluation reset")
    returns = np.zeros(len(envs))
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        actions = policy(obs[rows], rows)
        for row, action in zip(rows, actions, strict=True):
            next_obs, reward, terminated, truncated, info = envs[row].step(action)
            check_finite_obs(next_obs, -1, f"evaluation episode {row}")
            returns[row] += float(reward)
            if costs is not None:
                costs[row] += float(info.get("cost", 0.0))
            obs[row] = next_obs
            if terminated or truncated:
                active[row] = False
    return returns


def collect_episodes(envs: list[gym.Env], policy: Policy, seeds: list[int]) -> list[Episode]:
    """Play len(envs) episodes in lock-step (env j reset with seeds[j]) and record every step,
    for a logged dataset; the policy sees all still-running episodes at once."""
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    check_finite_obs(obs, 0, "collection reset")
    record = [
        {"obs": [obs[j].copy()], "action": [], "reward": [], "term": [], "trunc": []}
        for j in range(len(envs))
    ]
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        actions = policy(obs[rows], rows)
        for row, action in zip(rows, actions, strict=True):
            next_obs, reward, terminated, truncated, _ = envs[row].step(action)
            check_finite_obs(next_obs, len(record[row]["reward"]) + 1, f"collection episode {row}")
            steps = record[row]
            steps["obs"].append(np.asarray(next_obs, np.float32))
            steps["action"].append(np.asarray(action, np.float32).reshape(-1))
            steps["reward"].append(float(reward))
            steps["term"].append(bool(terminated))
            steps["trunc"].append(bool(truncated))
            obs[row] = next_obs
            if terminated or truncated:
                active[row] = False
    return [
        Episode(
            observations=np.stack(r["obs"]).astype(np.float32),
            actions=np.stack(r["action"]),
            rewards=np.asarray(r["reward"], np.float32),
            terminations=np.asarray(r["term"]),
            truncations=np.asarray(r["trunc"]),
        )
        for r in record
    ]
