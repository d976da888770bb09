"""The run configuration: typed dataclasses, a docstring per field, parsed into the CLI by tyro.

Derived values (spaces, which heads to learn) are computed once when a run starts; nothing
mutates a config after it is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from forethought.errors import ConfigError, DataError, require
from forethought.models.dynamics import ModelConfig
from forethought.models.fitting import FitConfig
from forethought.models.value import ValueConfig
from forethought.planners import DISCRETE_PLANNERS
from forethought.planners.base import PlannerConfig, PlannerName
from forethought.planners.mcts import TreeSearchConfig
from forethought.rollout import RolloutConfig
from forethought.runtime import check_device
from forethought.tasks.base import ActionKind
from forethought.tasks.constraints import SafetyConfig
from forethought.tasks.drift import DriftConfig

Algorithm = Literal["mpc", "loop", "mbpo", "sac", "td3", "ppo", "dqn"]
OnResume = Literal["replay", "keep"]
MODEL_FREE = ("sac", "td3", "ppo", "dqn")
SB3_DRIVEN = ("mbpo", *MODEL_FREE)  # runs whose acting and learning loop is SB3's `learn`
PLANNED = ("mpc", "loop")  # runs in which the planner acts (trainers/pets.py)


@dataclass(frozen=True)
class MonitorConfig:
    """Model-error monitoring and triggered retraining."""

    enabled: bool = False
    """Watch the one-step prediction surprise while acting and refit when the model has drifted."""
    factor: float = 50.0
    """Fire when the windowed surprise exceeds this many times the model's holdout surprise. Without a change, Pendulum-v1 windows reached up to ~14x (new on-policy states); a reversed actuator gave thousands of times, enough to fire within 1-2 steps."""
    window: int = 20
    """Number of recent steps averaged before comparing."""
    refit_mid_episode: bool = True
    """Refit as soon as the monitor fires (else only at the end of the episode)."""
    forget: bool = False
    """On an alarm, drop the transitions from before the estimated change (the first step of the window whose own surprise passed the threshold) and refit from fresh weights once `window` new transitions exist: the old data and weights describe dynamics that no longer hold, and a model fitted on old and new data together averages the two."""
    forget_cooldown: int = 1000
    """Steps after forgetting during which further alarms do not forget (the model of the new dynamics is still being learned, and its alarms then mean "new states", not "new dynamics")."""

    def validate(self) -> None:
        require(self.factor > 1.0, "monitor.factor", "must exceed 1")
        require(self.window >= 1, "monitor.window", "must be at least 1")
        if self.forget:
            require(
                self.window >= 2, "monitor.window", "must be at least 2 to forget (a fit needs 2)"
            )
        require(self.forget_cooldown >= 0, "monitor.forget_cooldown", "must be 0 or more")


@dataclass(frozen=True)
class MBPOConfig:
    """Model-based policy optimisation (Janner et al. 2019): SAC trained mostly on short
    model rollouts branched from real states."""

    real_ratio: float = 0.05
    """Fraction of every SAC batch drawn from real transitions (the rest: imagined)."""
    model_train_freq: int = 250
    """Refit the dynamics ensemble and refresh the imagined data every this many env steps."""
    rollout_batch: int = 5_000
    """Real start states branched from per refresh."""
    rollout_min_length: int = 1
    """Imagined steps per branch at the start of the schedule."""
    rollout_max_length: int = 1
    """Imagined steps per branch at the end of the schedule (MBPO: 1 for short-horizon tasks, up to 15-25 for locomotion)."""
    rollout_ramp_start: int = 0
    """Env step at which the rollout length starts growing from min ..."""
    rollout_ramp_end: int = 1
    """... reaching max at this env step (linear in between)."""
    retain_refreshes: int = 4
    """Imagined data from this many refreshes is kept (older branches are overwritten)."""
    gradient_steps: int = 10
    """SAC updates per env step (MBPO uses 20; imagined data makes many updates safe)."""
    warmup_steps: int = 1_000
    """Uniformly random actions first (SB3's learning_starts)."""

    def rollout_length(self, env_steps: int) -> int:
        start, end = self.rollout_ramp_start, self.rollout_ramp_end
        fraction = min(max((env_steps - start) / max(end - start, 1), 0.0), 1.0)
        span = self.rollout_max_length - self.rollout_min_length
        return round(self.rollout_min_length + fraction * span)

    def validate(self) -> None:
        require(0.0 <= self.real_ratio <= 1.0, "mbpo.real_ratio", "must be in [0, 1]")
        require(self.model_train_freq >= 1, "mbpo.model_train_freq", "must be at least 1")
        require(self.rollout_batch >= 1, "mbpo.rollout_batch", "must be at least 1")
        require(self.rollout_min_length >= 1, "mbpo.rollout_min_length", "must be at least 1")
        require(
            self.rollout_max_length >= self.rollout_min_length,
            "mbpo.rollout_max_length",
            "must be at least mbpo.rollout_min_length",
        )
        require(
            self.rollout_ramp_end >= self.rollout_ramp_start >= 0,
            "mbpo.rollout_ramp_end",
            "must be at least mbpo.rollout_ramp_start (and both at least 0)",
        )
        require(self.retain_refreshes >= 1, "mbpo.retain_refreshes", "must be at least 1")
        require(self.gradient_steps >= 1, "mbpo.gradient_steps", "must be at least 1")
        require(self.warmup_steps >= 1, "mbpo.warmup_steps", "must be at least 1")

    def model_buffer_capacity(self) -> int:
        return self.rollout_batch * self.rollout_max_length * self.retain_refreshes


IMAGINED_FITS_KEPT = 4  # --loop.imagined-ratio: model fits whose branches SAC still samples


@dataclass(frozen=True)
class LoopConfig:
    """Planning in the loop with a learned actor and critic (--algo loop): SAC learns from the
    planner's transitions; its critic values the plan's last state and its actor proposes plans."""

    gamma: float = 0.99
    """Discount of the critic, and of the imagined rewards in the planner's objective (so that return + gamma^H x value is one discounted sum)."""
    train_freq: int = 50
    """SAC trains every this many environment steps ..."""
    gradient_steps: int = 1
    """... taking this many updates per environment step since the last training."""
    learning_starts: int = 100
    """Environment steps collected before SAC first trains."""
    batch_size: int = 256
    """SAC minibatch size."""
    learning_rate: float = 3e-4
    """SAC learning rate (actor, critic and entropy coefficient)."""
    hidden_size: int = 256
    """Units in each of the two hidden layers of the actor and of each critic."""
    proposals: int = 8
    """Actor trajectories (imagined through the ensemble mean) added to the planner's candidates in every iteration: the first follows the actor's mean action, the rest sample from it."""
    anchor: bool = False
    """Start every plan's sampling distribution at the actor's mean trajectory (the first proposal) instead of the last plan shifted, so executed actions stay near the actor's (in the spirit of LOOP's actor-regularised control); pair with a small --planning.init-std."""
    anchor_sampled: bool = False
    """With --loop.anchor, start the plans of training episodes at one of the actor's sampled trajectories (the second proposal) instead of its mean, so the planner explores around what SAC's stochastic policy would do, as MBPO's data is collected; evaluation plans start at the mean."""
    terminal_value: bool = True
    """Add gamma^H x a learned value of each particle's final state to the candidate's score (see --loop.value)."""
    value: Literal["behaviour", "critic"] = "behaviour"
    """The value at the horizon. behaviour: a state value fitted by TD(lambda) on the planner's own trajectories after every model fit (--value.*): what continuing to plan is worth. critic: SAC's (min of its twin Q heads at the actor's action): what following the actor from there is worth; it lags while the actor is still poor (InvertedPendulum-v5, seed 0: evaluation returns of 28-205 through 2,000 steps with it, against 1000 at 1,732 steps with the behaviour value)."""
    pessimistic_value: bool = False
    """Aggregate the terminal value pessimistically: average each ensemble member's particles, then take the minimum over members (instead of the mean over all particles)."""
    imagined_ratio: float = 0.0
    """Fraction of every SAC batch drawn from imagined transitions (MBPO's data): after every model fit, --loop.branches rollouts of --loop.branch-length steps branch from real states with the actor, each step through a random ensemble member; the last four fits' branches are kept. 0 trains SAC on the real transitions only."""
    branches: int = 10_000
    """Imagined rollouts started from real states after every model fit (with --loop.imagined-ratio)."""
    branch_length: int = 1
    """Imagined steps per branch (with --loop.imagined-ratio)."""

    def imagined_capacity(self) -> int:
        return self.branches * self.branch_length * IMAGINED_FITS_KEPT

    def validate(self) -> None:
        require(0.0 < self.gamma < 1.0, "loop.gamma", "must be in (0, 1)")
        require(0.0 <= self.imagined_ratio < 1.0, "loop.imagined_ratio", "must be in [0, 1)")
        require(self.branches >= 1, "loop.branches", "must be at least 1")
        require(self.branch_length >= 1, "loop.branch_length", "must be at least 1")
        require(self.train_freq >= 1, "loop.train_freq", "must be at least 1")
        require(self.gradient_steps >= 1, "loop.gradient_steps", "must be at least 1")
        require(self.learning_starts >= 1, "loop.learning_starts", "must be at least 1")
        require(self.batch_size >= 1, "loop.batch_size", "must be at least 1")
        require(self.learning_rate > 0, "loop.learning_rate", "must be positive")
        require(self.hidden_size >= 1, "loop.hidden_size", "must be at least 1")
        require(self.proposals >= 0, "loop.proposals", "must be 0 or more")
        require(
            not self.anchor or self.proposals >= 1,
            "loop.anchor",
            "needs --loop.proposals of 1 or more (the actor's mean trajectory is the first)",
        )
        require(
            not self.anchor_sampled or (self.anchor and self.proposals >= 2),
            "loop.anchor_sampled",
            "needs --loop.anchor and --loop.proposals of 2 or more (the second is sampled)",
        )


DEFAULT_EPISODES = 10  # training episodes when neither --episodes nor --steps is given


@dataclass(frozen=True)
class TrainConfig:
    """A model-based control run: warm-up with random actions, then per episode collect with
    MPC, refit the model, and evaluate on fixed seeds."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id (flat Box observations; Box or Discrete actions)."""
    algo: Algorithm = "mpc"
    """mpc: learn a dynamics model and plan with it. loop: the same, while SAC learns from the planner's transitions; its critic values the end of every plan and its actor proposes plans (see --loop.*). mbpo: SAC trained on short imagined rollouts from the same model (see --mbpo.*). sac, td3, ppo, dqn: the Stable-Baselines3 algorithm with rl-baselines3-zoo settings, same evaluation protocol and run directory (the model-free baselines)."""
    planner: PlannerName = "icem"
    """Planner. Box actions: random, cem, icem or mppi (trajectory optimisers). Discrete actions: mcts (tree search, see --mcts.*) or discrete-cem (CEM over categorical action sequences, see --planning.*)."""
    episodes: int | None = None
    """Total training episodes, warm-up included. None: 10 without --steps; with --steps, as many as the step budget takes (when both are given, whichever ends first)."""
    steps: int | None = None
    """Environment-step budget. MPC stops after the episode in which it is reached, SAC and TD3 exactly there, PPO after the rollout that crosses it (default for the model-free algorithms: --episodes, 10 when not given, x the environment's time limit)."""
    stop_at_return: float | None = None
    """End the run at the first evaluation whose mean return reaches this (e.g. 475 on CartPole-v1), as if its budget were spent; a run that stopped there stays stopped on --resume."""
    warmup_episodes: int = 1
    """Initial episodes with uniformly random actions (no model yet)."""
    explore_std: float = 0.0
    """Training episodes of --algo mpc and loop only: add Gaussian noise of this std (a fraction of each action's range) to every planned action, clipped to the bounds, as TD-MPC samples its training actions; evaluation acts without it. 0: the planner's action as it is (continuous actions only)."""
    seed: int = 0
    """Seed for the model, planner, random actions and training-episode resets."""
    out: Path | None = None
    """Run directory to create (default: runs/<env>-<planner>-seed<seed>)."""
    resume: Path | None = None
    """Continue the killed or finished run in this directory with its saved settings; only --episodes, --steps, --on-resume, --threads and --quiet may be given again."""
    on_resume: OnResume = "replay"
    """What --resume does with an episode the kill interrupted. replay: run it again from its start with the same reset seed and random state, so the resumed run equals one never killed (needs a simulator); the interrupted attempt stays in the log, listed as abandoned. keep: count its transitions as experience and go on with the next episode (for systems that cannot be replayed)."""
    device: str = "cpu"
    """Torch device for the model and planner: cpu, cuda or cuda:N."""
    threads: int = 1
    """Torch CPU threads (0 keeps torch's default). One is fastest for small models on a shared machine: threads that wait on each other cost more than they add."""
    eval_episodes: int = 10
    """Evaluation episodes after every `eval_every` training episodes (planned in one batch)."""
    eval_seed: int = 1000
    """Evaluation episode j resets with seed eval_seed + j, the same for every method."""
    eval_every: int = 1
    """Evaluate after every this many training episodes (and always after the last)."""
    eval_every_steps: int = 0
    """Also evaluate every this many environment steps, mid-episode too (0: off); these rows are events in metrics.jsonl and points on the learning curve."""
    max_episode_steps: int | None = None
    """Override the environment's time limit (steps per episode)."""
    refit_every: int = 1
    """Refit the model after every this many episodes (the fixed schedule; the monitor can add refits in between)."""
    buffer_capacity: int = 1_000_000
    """Replay buffer capacity in transitions."""
    quiet: bool = False
    """No progress bar or table (metrics are still written)."""
    keep_policies: bool = False
    """sac, td3, mbpo: also save the policy's weights at every evaluation, as RUN_DIR/policies/step-N.pt (behaviour policies of different quality for `forethought dataset` and `forethought ope`)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    planning: PlannerConfig = field(default_factory=PlannerConfig)
    mcts: TreeSearchConfig = field(default_factory=TreeSearchConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    mbpo: MBPOConfig = field(default_factory=MBPOConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    @property
    def episode_limit(self) -> int | None:
        """The episodes the run may take: --episodes when given; otherwise none beyond the step
        budget when there is one (a run asked for 3,000 steps runs them, however many episodes
        that takes), and DEFAULT_EPISODES when neither is given."""
        if self.episodes is not None:
            return self.episodes
        return None if self.steps is not None else DEFAULT_EPISODES

    def reached_stop_return(self, history: list[dict]) -> bool:
        """Whether the latest evaluation in `history` reached --stop-at-return."""
        if self.stop_at_return is None:
            return False
        evaluated = [row["eval_return"] for row in history if row.get("eval_return") is not None]
        return bool(evaluated) and evaluated[-1] >= self.stop_at_return

    def validate(self) -> None:
        require(bool(self.env), "env", "must name a Gymnasium environment, e.g. Pendulum-v1")
        require(self.episodes is None or self.episodes >= 1, "episodes", "must be at least 1")
        if self.steps is not None:
            require(self.steps >= 1, "steps", "must be at least 1")
        if self.stop_at_return is not None:
            require(math.isfinite(self.stop_at_return), "stop_at_return", "must be a finite number")
        require(
            self.warmup_episodes >= 1,
            "warmup_episodes",
            "must be at least 1 (the model needs data)",
        )
        limit = self.episode_limit
        require(
            limit is None or self.warmup_episodes <= limit,
            "warmup_episodes",
            f"({self.warmup_episodes}) cannot exceed episodes ({limit})",
        )
        require(self.explore_std >= 0, "explore_std", "must be 0 (off) or more")
        require(
            self.explore_std == 0 or self.algo in ("mpc", "loop"),
            "explore_std",
            "applies to the planner's training actions: --algo mpc or loop",
        )
        require(self.eval_episodes >= 1, "eval_episodes", "must be at least 1")
        require(self.eval_every >= 1, "eval_every", "must be at least 1")
        require(self.eval_every_steps >= 0, "eval_every_steps", "must be 0 (off) or more")
        require(self.threads >= 0, "threads", "must be 0 (torch default) or more")
        require(self.refit_every >= 1, "refit_every", "must be at least 1")
        require(self.buffer_capacity >= 1, "buffer_capacity", "must be at least 1")
        if self.max_episode_steps is not None:
            require(self.max_episode_steps >= 1, "max_episode_steps", "must be at least 1")
        check_device(self.device)
        self.model.validate()
        self.fit.validate()
        if self.algo in PLANNED:  # settings the other methods do not read
            self.planning.validate()
            self.mcts.validate()
            self.value.validate()
            self.rollout.validate(self.model.ensemble_size)
            self.monitor.validate()
        elif self.monitor.enabled or self.drift.at_step is not None:
            raise ConfigError(
                "algo", f"--monitor.* and --drift.* are implemented for mpc only, not {self.algo}"
            )
        if self.keep_policies and self.algo not in ("sac", "td3", "mbpo"):
            raise ConfigError(
                "keep_policies", f"is implemented for sac, td3 and mbpo, not {self.algo}"
            )
        self._validate_imagined_value()
        self._validate_value_at_horizon()
        self._validate_value_trust()
        self._validate_safety()
        self.drift.validate()
        self.mbpo.validate()
        self.loop.validate()
        self._validate_loop()

    def acting(self) -> tuple[str, ActionKind, str]:
        """The method's name, the action spaces it acts in, and what to use for the others."""
        if self.algo == "mpc":
            method = f"planner {self.planner}"
            if self.planner in DISCRETE_PLANNERS:
                return method, "discrete", "for a Box action space use --planner icem, cem or mppi"
            return (
                method,
                "continuous",
                "for a Discrete action space use --planner mcts or --planner discrete-cem",
            )
        if self.algo == "loop":
            return (
                f"--algo loop (planner {self.planner})",
                "continuous",
                "for a Discrete action space use --algo mpc --planner mcts or discrete-cem",
            )
        if self.algo == "dqn":
            return "dqn", "discrete", "for a Box action space use --algo sac, td3 or ppo"
        if self.algo == "ppo":
            return "ppo", "any", ""
        return (
            self.algo,
            "continuous",
            "for a Discrete action space use --algo dqn or ppo, or --algo mpc --planner mcts",
        )

    def make_kwargs(self) -> dict[str, Any]:
        """Extra `gymnasium.make` arguments (the time-limit override)."""
        if self.max_episode_steps is None:
            return {}
        return {"max_episode_steps": self.max_episode_steps}

    def run_dir(self) -> Path:
        method = {"mpc": self.planner, "loop": f"loop-{self.planner}"}.get(self.algo, self.algo)
        return self.out or Path("runs") / f"{self.env}-{method}-seed{self.seed}"

    def _validate_loop(self) -> None:
        """--algo loop: Box actions (SAC's actor), one member per particle for a pessimistic
        value, and its discount in --loop.gamma."""
        if self.algo == "loop" and self.planner in DISCRETE_PLANNERS:
            raise ConfigError(
                "planner",
                f"{self.planner} is for Discrete actions; --algo loop uses SAC's actor and "
                "critic, which need Box actions: use --planner icem, cem or mppi",
            )
        if (
            self.algo == "loop"
            and self.loop.pessimistic_value
            and self.rollout.propagation == "mean"
        ):
            raise ConfigError(
                "loop.pessimistic_value",
                "needs one member per particle (--rollout.propagation tsinf or ts1), not mean",
            )
        if self.algo == "loop" and self.rollout.discount != 1.0:
            raise ConfigError(
                "rollout.discount",
                "is --loop.gamma for --algo loop (the critic's discount); leave it at 1.0",
            )

    def _validate_value_at_horizon(self) -> None:
        if not self.value.at_horizon:
            return
        if self.algo != "mpc" or self.planner == "mcts":
            raise ConfigError(
                "value.at_horizon",
                "is for the shooting planners of --algo mpc (tree search always has its value at "
                "the leaves: --value.enabled; --algo loop has --loop.terminal-value)",
            )
        if self.rollout.discount >= 1:
            raise ConfigError(
                "value.at_horizon",
                "needs --rollout.discount below 1 (e.g. 0.98): V is a discounted return, and "
                "the plan's own rewards must be discounted the same way",
            )

    def _validate_value_trust(self) -> None:
        if not self.value.gated():
            return
        behaviour = (
            self.algo == "loop" and self.loop.terminal_value and self.loop.value == "behaviour"
        )
        if not (behaviour or self.value.at_horizon):
            raise ConfigError(
                "value.trust" if self.value.trust is not None else "value.trial_steps",
                "gates the state value at a shooting planner's horizon: it needs --algo loop "
                "(--loop.value behaviour) or --value.at-horizon",
            )

    def _validate_imagined_value(self) -> None:
        if self.value.imagined_horizon == 0:
            return
        tree = self.algo == "mpc" and self.planner == "mcts"
        loop = self.algo == "loop" and self.loop.terminal_value and self.loop.value == "behaviour"
        if not (tree or loop):
            raise ConfigError(
                "value.imagined_horizon",
                "is for tree search (--planner mcts), whose discrete choices it distils into "
                "a policy to imagine with, and for --algo loop's state value (SAC's actor "
                "imagines); leave it at 0 here",
            )
        if not self.value.enabled:
            raise ConfigError(
                "value.imagined_horizon", "trains the learned leaf value: it needs --value.enabled"
            )

    def _validate_safety(self) -> None:
        """The constraint fits the task; the Lagrangian penalty only where a learner reads it."""
        self.safety.validate(self.env)
        if self.safety.lagrangian and self.algo not in ("sac", "td3", "ppo"):
            why = {
                "mbpo": "would learn from imagined transitions that carry no cost",
                "dqn": "acts in discrete spaces, where no constraint is defined",
            }.get(self.algo, "plans under the constraint and vetoes unsafe plans instead")
            raise ConfigError("safety.lagrangian", f"is for sac, td3 and ppo; {self.algo} {why}")
        if self.safety.lagrangian and self.safety.constraint is None:
            raise ConfigError(
                "safety.lagrangian", "needs a cost to penalise: add --safety.constraint"
            )
        if self.safety.shield:
            require(
                self.algo == "mbpo",
                "safety.shield",
                f"shields MBPO's SAC with MBPO's own ensemble; {self.algo} has no such pair "
                "(mpc and loop plan under the constraint: drop --safety.shield)",
            )
            require(
                self.safety.constraint is not None, "safety.shield", "needs --safety.constraint"
            )
            require(
                self.safety.veto, "safety.shield", "vetoes unsafe actions; drop --safety.no-veto"
            )
            self.rollout.validate(self.model.ensemble_size)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> TrainConfig:
        """The config saved in a run directory; anything else is a one-line error naming it."""
        # Nested configs are the fields built by a default factory (ModelConfig, FitConfig, ...).
        nested = {
            f.name: f.default_factory
            for f in dataclasses.fields(cls)
            if f.default_factory is not dataclasses.MISSING
        }
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            run_dir, hint = Path(source).parent, ""
            if "iterations" in data:
                hint = (
                    "; it looks like a language-model self-training run: continue it with "
                    f"`forethought lm selftrain --resume {run_dir}`"
                )
            elif "generations" in data:
                hint = (
                    "; it looks like a language-model GRPO run: continue it with "
                    f"`forethought lm grpo --resume {run_dir}`"
                )
            raise DataError(
                f"{source} is not a control run's configuration (unknown fields: "
                f"{', '.join(unknown[:5])}){hint}"
            )
        _check_types(cls(), data, source)
        try:
            kwargs = {k: (nested[k](**v) if k in nested else v) for k, v in data.items()}
            for key in ("out", "resume"):
                if kwargs.get(key) is not None:
                    kwargs[key] = Path(kwargs[key])
            config = cls(**kwargs)
            config.validate()
            return config
        except (TypeError, ValueError, AttributeError) as exc:  # renamed fields, wrong types
            raise DataError(
                f"{source} holds an invalid configuration ({exc}); it was edited or written "
                "by another forethought version"
            ) from None

    def resumed(self, given: TrainConfig) -> TrainConfig:
        """This saved config with the settings `given` on the command line next to --resume
        (those that differ from the defaults and from the saved run); only settings that leave
        the run's past valid may change, anything else is refused rather than silently ignored."""
        defaults, changed = TrainConfig(), {}
        for f in dataclasses.fields(self):
            value = getattr(given, f.name)
            if f.name in ("resume", "out") or value in (
                getattr(defaults, f.name),
                getattr(self, f.name),
            ):
                continue
            changed[f.name] = value
        fixed = sorted(set(changed) - set(RESUME_OVERRIDES))
        if fixed:
            flags = ", ".join("--" + n.replace("_", "-") for n in fixed)
            raise ConfigError(
                "resume",
                f"{flags} cannot change when resuming (the run keeps the settings it started "
                f"with); only {', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDES)} "
                "may be given",
            )
        return dataclasses.replace(self, **changed)


def _check_types(defaults: Any, data: dict[str, Any], source: str, prefix: str = "") -> None:
    """Refuse a saved value whose type differs from its field's default (an edited file)."""
    for key, value in data.items():
        default = getattr(defaults, key, None)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise DataError(f"{source}: '{prefix}{key}' should be an object, got {value!r}")
            _check_types(default, value, source, f"{prefix}{key}.")
            continue
        declared = _declared_type(defaults, key)
        expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(declared)
        if (
            expected
            and value is not None
            and (
                not isinstance(value, expected)
                or (isinstance(value, bool) and bool not in expected)
            )
        ):
            raise DataError(
                f"{source}: '{prefix}{key}' is {value!r}, expected {declared.__name__}; "
                "the file was edited or written by another forethought version"
            )


def _declared_type(defaults: Any, key: str) -> type | None:
    """A field's type: its default's, or for an optional field (default None) the type its
    annotation names first (`int | None` -> int)."""
    default = getattr(defaults, key, None)
    if default is not None:
        return type(default)
    field = {f.name: f for f in dataclasses.fields(defaults)}.get(key)
    if field is None:
        return None
    first = str(field.type).split("|")[0].strip()
    return {"bool": bool, "int": int, "float": float, "str": str}.get(first)


# Settings a resumed run may change: how long it runs and how it uses the machine.
RESUME_OVERRIDES = ("episodes", "steps", "on_resume", "threads", "quiet")
