"""`forethought evaluate RUN_DIR`: every controller a finished MBPO, loop or SAC run can field,
side by side.

From one run's SAC policy, critic and dynamics ensemble (and, for a loop run that learned one,
the planner's own state value, which the guided planner then uses at the horizon). A SAC run
learned no model: one is fitted on its replay buffer, every real transition the run saw (the
ensemble of the run's --model/--fit settings, as MBPO would have fitted it), once, and kept in
RUN_DIR/evaluate_model.pt:

    policy   the SAC policy alone (mean action)
    mpc      plain iCEM MPC with the run's model (the PETS-style planner, default settings)
    guided   iCEM seeded with the policy's imagined trajectories, plus the critic's value at the
             horizon, with a short horizon and a small population
    switch   the policy, handing states where the ensemble disagrees about its action (beyond
             the 95th percentile seen on real data) to the guided planner

Each is scored on the run's evaluation seeds (batched) and timed on one episode acting alone
(milliseconds per action). Results: a table, and RUN_DIR/controllers.json.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import tyro
from rich.console import Console
from rich.table import Table

from forethought.agents.build import dynamics_model, make_state_value
from forethought.agents.guided import GuidedMPCAgent, PolicyPrior, SwitchingAgent
from forethought.agents.mpc import MPCAgent
from forethought.agents.shield import Shield
from forethought.config import TrainConfig
from forethought.data import ReplayBuffer
from forethought.errors import ConfigError, require
from forethought.models import DynamicsModel
from forethought.models.value import StateValue
from forethought.planners import PlannerConfig, make_planner
from forethought.runtime import configure_cpu
from forethought.storage import RunLock, atomic_write_bytes
from forethought.tasks import TaskSpec, get_task, make_env
from forethought.tasks.constraints import SafetyConfig, with_costs
from forethought.tasks.episodes import evaluate_batched, run_episode
from forethought.trainers.run_dir import RunDir
from forethought.trainers.sb3_state import transitions_of

if TYPE_CHECKING:
    from stable_baselines3 import SAC

Controller = Literal["policy", "mpc", "guided", "switch"]
SAC_MODEL = "evaluate_model.pt"  # a SAC run's ensemble, fitted on its replay buffer


@dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a finished `--algo mbpo`, `loop` or `sac` run's controllers (policy, MPC,
    policy-guided MPC, switching hybrid, a shield over the policy): evaluation return and
    milliseconds per action for each; a SAC run's model is first fitted on its replay buffer."""

    run_dir: tyro.conf.Positional[Path]
    """The MBPO, loop or SAC run directory."""
    controllers: tuple[Controller, ...] = ("policy", "mpc", "guided", "switch")
    """Which controllers to evaluate."""
    episodes: int | None = None
    """Evaluation episodes (default: the run's eval_episodes), on its evaluation seeds."""
    mpc_horizon: int = 20
    """Plain MPC: planning horizon."""
    mpc_population: int = 100
    """Plain MPC: iCEM population."""
    guided_horizon: int = 5
    """Guided MPC: planning horizon (the critic covers the rest)."""
    guided_population: int = 20
    """Guided MPC: iCEM population."""
    guided_iterations: int = 1
    """Guided MPC: iCEM iterations."""
    proposals: int = 4
    """Guided MPC: policy trajectories added to the candidates at every iteration."""
    switch_quantile: float = 0.95
    """Switching hybrid: consult the planner above this quantile of real-data disagreement."""
    shield: str | None = None
    """Also evaluate the SAC policy under a shield for this constraint (pendulum-speed, pendulum-zone, cartpole-position or cheetah-velocity): the policy's next steps are imagined with the ensemble and a constrained planner acts where they would break it; every controller's constraint cost is reported."""
    shield_lookahead: int = 20
    """Shield: steps imagined before each action (the proposed action, then the policy's); they must reach past the point where the constraint can no longer be kept."""
    shield_planner: Literal["guided", "mpc"] = "mpc"
    """Shield: the constrained planner that acts on an override: guided (the guided MPC's settings above, seeded by the policy, critic beyond its horizon) or mpc (plain iCEM with --mpc-horizon and --mpc-population, 3 iterations)."""
    seed: int = 0
    """Seed for the planners' sampling."""
    quiet: bool = False
    """No table."""


@dataclass
class LearnedParts:
    """What a run learned, which the controllers are assembled from."""

    sac: SAC
    model: DynamicsModel
    task: TaskSpec
    real_obs: np.ndarray  # every real state the run visited, in order
    state_value: StateValue | None = None  # --algo loop --loop.value behaviour


def _load(args: EvaluateArgs, console: Console | None) -> tuple[TrainConfig, LearnedParts]:
    _, config = RunDir.open(args.run_dir, flag="RUN_DIR", lock=False)
    require(
        config.algo in ("mbpo", "loop", "sac"),
        "RUN_DIR",
        f"{args.run_dir} is an --algo {config.algo} run; evaluate needs an --algo mbpo, loop "
        "or sac run (it uses the run's SAC policy and critic)",
    )
    if config.algo == "sac":
        say = console.print if console is not None and not args.quiet else lambda *_: None
        return config, load_sac(args.run_dir, config, say)
    load = load_mbpo if config.algo == "mbpo" else load_loop
    return config, load(args.run_dir, config)


def _sac_and_rollouts(checkpoint: dict, config: TrainConfig):
    """The checkpoint's SAC with its replay buffer, and MBPO's dynamics ensemble and trainer for
    the run's settings (fresh weights from the run's seed)."""
    from stable_baselines3 import SAC

    from forethought.trainers import mbpo, sb3

    sac = SAC.load(io.BytesIO(checkpoint["model"]), device="cpu")
    sb3.load_replay_buffer(sac, checkpoint["replay_buffer"])
    return sac, mbpo.attach(config, sac.action_space, sac.observation_space.shape[0], "cpu")


def load_mbpo(run_dir: Path, config: TrainConfig) -> LearnedParts:
    """An MBPO run's SAC (policy, critics, replay buffer) and dynamics model, from its checkpoint."""
    checkpoint = RunDir(run_dir).load_checkpoint()
    if checkpoint is None or "dynamics" not in checkpoint:
        raise ConfigError("RUN_DIR", f"{run_dir} has no checkpoint with a fitted model yet")
    sac, rollouts = _sac_and_rollouts(checkpoint, config)
    rollouts.dynamics.load_state_dict(checkpoint["dynamics"])
    rollouts.dynamics.eval()
    real_obs = sac.replay_buffer.real_transitions().obs
    return LearnedParts(sac, rollouts.dynamics, rollouts.task, real_obs)


def load_sac(run_dir: Path, config: TrainConfig, say=print) -> LearnedParts:
    """A SAC run's policy, critics and replay buffer, and the dynamics ensemble fitted on that
    buffer (read from RUN_DIR/evaluate_model.pt when it was fitted on the same transitions)."""
    checkpoint = RunDir(run_dir).load_checkpoint()
    if checkpoint is None:
        raise ConfigError("RUN_DIR", f"{run_dir} has no checkpoint yet (no evaluation happened)")
    if "normalizer" in checkpoint:
        raise ConfigError("RUN_DIR", f"{run_dir} normalises observations; evaluate needs raw ones")
    sac, rollouts = _sac_and_rollouts(checkpoint, config)  # a fresh ensemble, as MBPO's
    real = transitions_of(sac.replay_buffer)
    real = replace(real, action=sac.policy.unscale_action(real.action))
    model, saved = rollouts.dynamics, run_dir / SAC_MODEL
    fitted = torch.load(saved, weights_only=True) if saved.exists() else None
    if fitted is not None and fitted["transitions"] == len(real.obs):
        model.load_state_dict(fitted["dynamics"])
    else:
        say(f"fitting the ensemble on the run's {len(real.obs):,} real transitions (once)")
        report = rollouts.trainer.fit(real, np.random.default_rng([config.seed, 1]))
        state = {"dynamics": model.state_dict(), "transitions": len(real.obs),
                 "holdout_error": report.holdout_error, "epochs": report.epochs}  # fmt: skip
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with RunLock(run_dir):
            atomic_write_bytes(saved, buffer.getvalue())
        say(f"model fitted in {report.seconds:.0f} s, held-out error {report.holdout_error:.4f}")
    return LearnedParts(sac, model.eval(), rollouts.task, real.obs)


def load_loop(run_dir: Path, config: TrainConfig) -> LearnedParts:
    """An --algo loop run's SAC (actor, critics) and dynamics model, and the planner's own
    state value if it learned one, from its checkpoint."""
    from forethought.trainers.actor_critic import ActorCritic

    checkpoint = RunDir(run_dir).load_checkpoint()
    if checkpoint is None:
        raise ConfigError("RUN_DIR", f"{run_dir} has no checkpoint yet (no episode finished)")
    config = replace(config, device="cpu")
    env = make_env(config.env, **config.make_kwargs())
    actor_critic = ActorCritic(config.loop, env.observation_space, env.action_space, 1, 0, "cpu")
    actor_critic.load_state_dict(checkpoint["actor_critic"])
    model = dynamics_model(config, env)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    state_value = make_state_value(config, model.obs_dim)
    if state_value is not None:
        state_value.load_state_dict(checkpoint["value"])
    real_obs = ReplayBuffer.from_state_dict(checkpoint["buffer"]).all().obs
    env.close()
    return LearnedParts(actor_critic.sac, model, get_task(config.env), real_obs, state_value)


def build_controllers(
    args: EvaluateArgs, config: TrainConfig, parts: LearnedParts
) -> dict[str, object]:
    prior = PolicyPrior(parts.sac)
    low, high = parts.sac.action_space.low, parts.sac.action_space.high

    def icem(horizon: int, population: int, iterations: int):
        elites = max(2, population // 10)
        planning = PlannerConfig(
            horizon=horizon, population=population, iterations=iterations, elites=elites
        )
        return make_planner("icem", planning, low, high)

    model, task, rollout = parts.model, parts.task, config.rollout
    members = model.ensemble_size
    if rollout.propagation != "mean" and rollout.particles % members:
        # MBPO never checked the planner's particle layout: round to a multiple of the members.
        rollout = replace(rollout, particles=members * max(1, round(rollout.particles / members)))

    def guided_planner(safety: SafetyConfig | None = None) -> GuidedMPCAgent:
        return GuidedMPCAgent(
            model,
            icem(args.guided_horizon, args.guided_population, args.guided_iterations),
            task,
            rollout,
            seed=args.seed,
            track_disagreement=False,
            prior=prior,
            proposals=args.proposals,
            safety=safety,
            state_value=parts.state_value,
        )

    def plain_mpc(safety: SafetyConfig | None = None) -> MPCAgent:
        planner = icem(args.mpc_horizon, args.mpc_population, 3)
        return MPCAgent(
            model, planner, task, rollout, seed=args.seed, track_disagreement=False, safety=safety
        )

    guided = guided_planner()
    made: dict[str, object] = {}
    for name in args.controllers:
        if name == "policy":
            made[name] = _PolicyController(prior)
        elif name == "mpc":
            made[name] = plain_mpc()
        elif name == "guided":
            made[name] = guided
        elif name == "switch":
            made[name] = SwitchingAgent.calibrated(
                prior, guided, parts.real_obs, args.switch_quantile
            )
    if args.shield is not None:
        safety = SafetyConfig(constraint=args.shield)
        fallback = guided_planner(safety) if args.shield_planner == "guided" else plain_mpc(safety)
        made["shielded"] = Shield(prior.act, model, fallback, safety, args.shield_lookahead)
    return made


class _PolicyController:
    def __init__(self, prior: PolicyPrior):
        self.prior = prior

    def reset(self) -> None:
        pass

    @torch.inference_mode()
    def act(self, obs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self.prior.act(torch.as_tensor(np.asarray(obs, np.float32))).numpy()


def evaluate_controllers(args: EvaluateArgs, console: Console | None = None) -> dict:
    require(0.0 < args.switch_quantile < 1.0, "switch_quantile", "must be in (0, 1)")
    require(args.guided_horizon >= 1, "guided_horizon", "must be at least 1")
    if args.episodes is not None:
        require(args.episodes >= 1, "episodes", "must be at least 1")
    config, parts = _load(args, console)
    configure_cpu(config.threads)
    episodes = config.eval_episodes if args.episodes is None else args.episodes
    seeds = [config.eval_seed + j for j in range(episodes)]
    safety = SafetyConfig(constraint=args.shield)
    safety.validate(config.env)
    envs = [
        with_costs(make_env(config.env, **config.make_kwargs()), safety) for _ in range(episodes)
    ]
    results: dict[str, dict] = {}
    controllers = build_controllers(args, config, parts)
    show = console is not None and not args.quiet
    for i, (name, controller) in enumerate(controllers.items()):
        if show and console.is_terminal:
            with console.status(f"evaluating {name} ({i + 1}/{len(controllers)})"):
                results[name] = _evaluate_one(controller, envs, seeds)
        else:
            results[name] = _evaluate_one(controller, envs, seeds)
        if show and not console.is_terminal:  # a log file gets a line per controller
            r = results[name]
            note = _note(r, constrained=args.shield is not None)
            console.print(
                f"{name}: eval {r['eval_return']:.1f} ± {r['eval_return_std']:.1f}, "
                f"{r['ms_per_action_median']:.2f} ms per action" + (f"; {note}" if note else ""),
                soft_wrap=True,
            )
    report = {"run_dir": str(args.run_dir), "env": config.env, "args": _jsonable(args), **results}
    with RunLock(args.run_dir):  # not while another process writes the directory
        atomic_write_bytes(directory_json(args.run_dir), json.dumps(report, indent=1).encode())
    if console is not None and not args.quiet:
        console.print(_table(config.env, results))
        console.print(f"json: {directory_json(args.run_dir)}")
    return report


def _evaluate_one(controller, envs: list, seeds: list[int]) -> dict:
    """Evaluation returns on the seeds (one batch), then milliseconds per action on one episode."""
    start = time.perf_counter()
    controller.reset()
    costs = np.zeros(len(seeds))
    returns = evaluate_batched(envs, controller.act, seeds, costs)
    shielded = isinstance(controller, Shield)
    if shielded:  # what the shield did in the evaluation episodes (not the timing one)
        overrides, decisions = list(controller.overrides), controller.decisions
    controller.reset()
    if isinstance(controller, SwitchingAgent):
        controller.decisions = controller.consulted = 0
    latency = run_episode(envs[0], controller.act, seeds[0], lambda *step: None)
    result = {
        "eval_return": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_cost": float(costs.mean()),
        "eval_costs": costs.tolist(),
        "eval_returns": returns.tolist(),
        "ms_per_action_median": statistics.median(latency.ms_per_action),
        "ms_per_action_mean": statistics.fmean(latency.ms_per_action),
        "seconds": time.perf_counter() - start,
    }
    if isinstance(controller, SwitchingAgent):
        result["planner_share"] = controller.consulted / max(controller.decisions, 1)
        result["threshold"] = controller.threshold
    if shielded:
        result["override_share"] = len(overrides) / max(decisions, 1)
        result["overrides"] = overrides[:1000]  # each with its reason, up to a thousand
    return result


def directory_json(run_dir: Path) -> Path:
    return Path(run_dir) / "controllers.json"


def _jsonable(args: EvaluateArgs) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in args.__dict__.items()}


def _table(env: str, results: dict[str, dict]) -> Table:
    table = Table(title=f"{env}: controllers from one run", title_justify="left")
    for column in ("controller", "eval return", "ms/action (median)", "ms/action (mean)", "note"):
        table.add_column(column, justify="right")
    constrained = "shielded" in results
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['eval_return']:.1f} ± {r['eval_return_std']:.1f}",
            f"{r['ms_per_action_median']:.2f}",
            f"{r['ms_per_action_mean']:.2f}",
            _note(r, constrained),
        )
    return table


def _note(result: dict, constrained: bool) -> str:
    """The planner's share of a switching controller, the shield's overrides, and the
    constraint's cost per episode when a shield was asked for."""
    note = ""
    if "planner_share" in result:
        note = f"planner on {100 * result['planner_share']:.0f}% of steps"
    if "override_share" in result:
        note = f"shield overrode {100 * result['override_share']:.1f}% of steps"
    if constrained:
        note = f"cost {result['eval_cost']:.1f}" + (f"; {note}" if note else "")
    return note
