"""A learned state value V(s), the worth of a state beyond what a search looks ahead.

Fitted value iteration on real transitions: each round freezes the current network, computes
TD(lambda) targets for the whole buffer from it, and regresses V on them for one pass of
minibatches. The target of step t mixes the one-step bootstrap r + discount * V_frozen(s') with
the target of step t + 1 of the same logged episode, lambda-weighted, so a round carries reward
information back many steps at once (one-step targets move it one step per round). Nothing is
bootstrapped past a termination; a time-limit truncation, or the end of the data, bootstraps.
It evaluates the policy that collected the data (random at first, the planner later), which is
enough to rank states by how much future reward they still hold: how close a pole is to
falling, a cart to the edge.

Targets and predictions stay within the returns the logged rewards allow,
[min(r_min, 0), max(r_max, 0)] / (1 - discount). Without that bound, bootstrapping from rarely
seen states feeds on its own extrapolation: on Acrobot-v1 (reward -1 per step, so no return
below -100) a fitted V reached -179 at fast-swinging states, and the tree search that used it
learned to keep the pendulum still. For the same reason the first fit starts from the mean
discounted return of the logged episodes rather than from 0 (an episode cut by a time limit
continuing at that same mean; with reward -1 and no termination that is -1 / (1 - discount)):
a value that has to climb from 0 to -100 over the rounds is steeper wherever the data is sparse.
The reward's own level (mean reward / (1 - discount)) is the same start where nothing
terminates, and far too high where episodes end early: 100 on CartPole-v1, whose random
episodes are worth about 14.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from forethought.errors import require
from forethought.models.ensemble import EnsembleLinear, EnsembleMLP
from forethought.types import TransitionBatch


@dataclass(frozen=True)
class ValueConfig:
    """The learned state value: at the leaves of tree search, and at the horizon of --algo loop's plans (--loop.value behaviour)."""

    enabled: bool = True
    """Learn V(s) from the real transitions and add it at the leaves (discounted, after the leaf rollout if any)."""
    hidden_size: int = 64
    """Units in each of the two hidden layers."""
    rounds: int = 30
    """Fitted-value-iteration rounds per fit (one target refresh and --value.passes passes over the data each)."""
    passes: int = 1
    """Passes over the data, in minibatches, per round against the same frozen targets. With few transitions one pass is a handful of updates and V stays near its starting level, tilted along whatever trend the first updates found: on Pendulum-v1 the loop's value after 1,000 steps (five warm-started fits of one pass a round) read -15 for spinning through the top at 6 rad/s and -181 for holding still there, where the logged returns near the top are -1 still and -196 spinning at 2-4 rad/s; ten passes a round on the same data read -64 still and -321 to -340 spinning."""
    batch_size: int = 256
    """Minibatch size."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    td_lambda: float = 0.95
    """Weight of the logged episode's continuation in each target: 0 is one-step TD, 1 the logged (Monte-Carlo) return, bootstrapped only where the episode was cut."""
    imagined_horizon: int = 0
    """Also fit V on the returns of imagined rollouts this many steps long from logged states, as many imagined states as logged ones (0: logged transitions only), played in the model by a policy: for tree search one distilled from the planner's logged actions, for --algo loop (--loop.value behaviour) SAC's actor, sampled. They show V where the planner's habits lead in the long run (a cart drifting off its track) before real episodes end there. On CartPole-v1 (discount 0.98, 150 steps) it did worse than without: 2,357 / 940 / not within 3,000 steps to 475 against 2,175 / 849 / 1,752 (benchmarks/sample_efficiency.py --methods mcts-imagined-value)."""
    fresh_fits: bool = False
    """Fit from fresh weights every time (a reset) instead of from the previous fit's: what a value fitted on early, narrow data extrapolated does not carry over into later fits."""
    at_horizon: bool = False
    """Shooting planners of --algo mpc (discrete-cem, cem, icem, mppi, random): add discount^H x V(the state each imagined trajectory ends in) to its return, with the discount of --rollout.discount (which must then be below 1) and V fitted on the real transitions after every model fit, as tree search fits it. Without it a plan is worth only its H imagined rewards. On CartPole-v1 (discrete-cem, --planning.horizon 40, --rollout.discount 0.98) seeds 0-4 reached 475 in 330 / 1,057 / 345 / 1,570 / 599 steps, where discrete CEM alone needed 2,096 / never / 753 on seeds 0-2 (benchmarks/sample_efficiency.py --methods discrete-cem-value)."""
    unsupported: Literal["clamp", "level"] = "clamp"
    """What V reads where the data does not support it. clamp: the members' mean, clamped to the returns the rewards allow. level: the logged level (the mean discounted return of the logged states) wherever that mean leaves those bounds by more than the fit's root-mean-square error on its targets or, with --value.members above 1, wherever the members disagree more than they do on any logged state. A value above the highest possible return is extrapolating, and the bound it clamps to is the best any state can be worth: on Pendulum-v1 after balanced episodes only, states spinning through the top read +150 unclamped (bound 0), and the planner that used the clamped value kept 5 of 10 evaluation pendulums spinning."""
    members: int = 1
    """Independent value networks fitted side by side (own initial weights, own TD targets, each warm-started from its own previous fit); the search uses their mean. Where the data leaves V undetermined each network extrapolates its own way, and the mean does not commit to one of those guesses. On CartPole-v1 (discount 0.98, --mcts.adaptive-horizon 2) 5 members did worse than 1: 2 of 5 seeds to 475 within 2,000 steps (792 / 1,098; 2,766; two never), against 4 of 5 (benchmarks/sample_efficiency.py --methods mcts-value-members)."""
    trust: float | None = None
    """Shooting planners only (--algo loop, --value.at-horizon): plan with V only once it has predicted real transitions it was not fitted on. Before every refit, V's R-squared on the transitions collected since the last fit (against their discounted returns, bootstrapped by V where an episode is cut; the logged level as the baseline) must reach this; until it has, and whenever it does not, plans are scored without V (with --algo loop as plain MPC scores them, undiscounted), and V's fits draw from a random stream of their own: with --loop.proposals 0 the run is then plain MPC's, draw for draw. None: always plan with V."""

    trial_steps: int = 0
    """Shooting planners only (--algo loop, --value.at-horizon): after every fit, plan closed-loop in the learned model for this many steps from --value.trial-starts logged states, once with V at the horizon and once without (same starts, same random draws), and plan the real episodes with V only while it does not lower that imagined return (with --value.trust, only when its check passes too); the difference is logged as value_trial_gain. It costs two such runs per fit. On Pendulum-v1 (100 steps, --loop.proposals 0) it let the value in at 3 of 80 checks, and the loop reached -200 at plain MPC's steps on all 8 seeds with MPC's curve but for one dip (benchmarks/sample_efficiency.py --methods loop-tried-no-proposals). 0: no trial."""
    trial_starts: int = 10
    """Logged states each --value.trial-steps trial starts from (rounded down to whole blocks of the ensemble's size, at least one per member)."""

    def gated(self) -> bool:
        """Whether plans may leave V out (--value.trust or --value.trial-steps)."""
        return self.trust is not None or self.trial_steps > 0

    def validate(self) -> None:
        require(self.hidden_size >= 1, "value.hidden_size", "must be at least 1")
        require(self.rounds >= 1, "value.rounds", "must be at least 1")
        require(self.passes >= 1, "value.passes", "must be at least 1")
        require(self.batch_size >= 1, "value.batch_size", "must be at least 1")
        require(self.learning_rate > 0, "value.learning_rate", "must be positive")
        require(0.0 <= self.td_lambda <= 1.0, "value.td_lambda", "must be in [0, 1]")
        require(self.imagined_horizon >= 0, "value.imagined_horizon", "must be 0 or more")
        require(self.members >= 1, "value.members", "must be at least 1")
        require(self.trust is None or self.trust <= 1.0, "value.trust", "must be at most 1")
        require(self.trial_steps >= 0, "value.trial_steps", "must be 0 or more")
        require(self.trial_starts >= 1, "value.trial_starts", "must be at least 1")
        require(
            self.unsupported in ("clamp", "level"),
            "value.unsupported",
            "must be clamp or level",
        )


class StateValue(nn.Module):
    """V(s) with the inputs standardised by the statistics of the data it was last fitted on;
    with `members` > 1, the mean of that many networks evaluated in one batched pass."""

    def __init__(self, obs_dim: int, config: ValueConfig):
        super().__init__()
        h, self.members = config.hidden_size, config.members
        self.unsupported = config.unsupported
        if self.members == 1:
            self.net = nn.Sequential(
                nn.Linear(obs_dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1)
            )
        else:
            self.net = EnsembleMLP(self.members, obs_dim, 1, h, num_hidden_layers=2)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("return_low", torch.tensor(-torch.inf))
        self.register_buffer("return_high", torch.tensor(torch.inf))
        # Set by every fit: the logged level, the fit's root-mean-square error on its last
        # targets, and the members' largest disagreement (standard deviation) on logged states.
        self.register_buffer("level", torch.tensor(0.0))
        self.register_buffer("fit_error", torch.tensor(0.0))
        self.register_buffer("spread_limit", torch.tensor(torch.inf))
        # --value.trust: whether the planner may use V now, the R-squared of its last check
        # (NaN before one), and how many transitions its last fit saw (the next check's start).
        self.register_buffer("trusted", torch.tensor(not config.gated()))
        self.register_buffer("checked_r2", torch.tensor(torch.nan))
        self.register_buffer("trial_gain", torch.tensor(torch.nan))  # --value.trial-steps
        self.register_buffer("fitted_on", torch.tensor(0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # ... x O -> ...
        each = self.by_member(obs)
        mean = each.mean(0)
        if self.unsupported == "clamp":
            return mean.clamp(self.return_low, self.return_high)
        # Within its fit's own error of the bounds a mean is noise about them, not extrapolation.
        low, high = self.return_low - self.fit_error, self.return_high + self.fit_error
        supported = (mean >= low) & (mean <= high)
        if self.members > 1:
            supported &= each.std(0) <= self.spread_limit
        bounded = mean.clamp(self.return_low, self.return_high)
        return torch.where(supported, bounded, self.level)

    def by_member(self, obs: torch.Tensor) -> torch.Tensor:  # ... x O -> members x ...
        """Every network's own output (what is trained: a clamped one has no gradient)."""
        x = (obs - self.obs_mean) / self.obs_std
        if self.members == 1:
            return self.net(x).squeeze(-1).unsqueeze(0)
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        return self.net(flat).reshape(self.members, *x.shape[:-1])

    def unbounded(self, obs: torch.Tensor) -> torch.Tensor:
        """The members' mean, unclamped."""
        return self.by_member(obs).mean(0)

    def output_bias(self) -> torch.Tensor:
        """The last layer's bias (every member's): where a first fit starts."""
        return self.net[-1].bias if self.members == 1 else self.net.layers[-1].bias

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the return bounds existed load unbounded.
        state_dict.setdefault(prefix + "return_low", torch.tensor(-torch.inf))
        state_dict.setdefault(prefix + "return_high", torch.tensor(torch.inf))
        state_dict.setdefault(prefix + "level", torch.tensor(0.0))
        state_dict.setdefault(prefix + "fit_error", torch.tensor(0.0))
        state_dict.setdefault(prefix + "spread_limit", torch.tensor(torch.inf))
        state_dict.setdefault(prefix + "trusted", torch.tensor(True))
        state_dict.setdefault(prefix + "checked_r2", torch.tensor(torch.nan))
        state_dict.setdefault(prefix + "fitted_on", torch.tensor(0))
        state_dict.setdefault(prefix + "trial_gain", torch.tensor(torch.nan))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ValueTrainer:
    """Fits a `StateValue` by fitted value iteration; owns its optimiser (checkpointed)."""

    def __init__(self, value: StateValue, config: ValueConfig, discount: float, seed: int = 0):
        self.value, self.config, self.discount = value, config, discount
        self.optimizer = torch.optim.Adam(value.parameters(), lr=config.learning_rate)
        # A gated value (--value.trust, --value.trial-steps) shuffles from its own stream: while the planner leaves
        # it out, the run's other draws are then exactly those of a run without it.
        self.own_rng = np.random.default_rng([seed, 2]) if config.gated() else None

    def stream(self, shared: np.random.Generator) -> np.random.Generator:
        """The generator to fit with: its own when gated, else the run's `shared` one."""
        return shared if self.own_rng is None else self.own_rng

    def state_dict(self) -> dict:
        """The optimiser and, when gated, the own stream (the weights are the value's)."""
        own = {} if self.own_rng is None else {"value_rng": self.own_rng.bit_generator.state}
        return {"value_optimizer": self.optimizer.state_dict(), **own}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["value_optimizer"])
        if self.own_rng is not None and "value_rng" in state:
            self.own_rng.bit_generator.state = state["value_rng"]

    def fit(
        self,
        data: TransitionBatch[np.ndarray],
        rng: np.random.Generator,
        imagined: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> float:
        """Returns the last round's mean squared error. `imagined` (states, returns), if given,
        are fixed regression targets fitted alongside the TD(lambda) ones in every round:
        returns of imagined rollouts that reach where the logged episodes rarely went."""
        if self.config.trust is not None:
            self._check(data)
        device = self.value.obs_mean.device
        batch = data.to_torch(device)
        self.value.obs_mean.copy_(batch.obs.mean(0))
        self.value.obs_std.copy_(batch.obs.std(0, unbiased=False).clamp_min(1e-6))
        horizon = 1.0 / (1.0 - self.discount) if self.discount < 1 else float(len(batch))
        linked = _linked(data)
        if self.config.fresh_fits:
            self.reset(int(rng.integers(2**62)))
        # Never trained (the optimiser, checkpointed with the value, has taken no step yet):
        # start at the data's level, not at 0. A resumed or older run keeps its fitted weights.
        level = logged_level(data, linked, self.discount) if self.discount < 1 else 0.0
        self.value.level.fill_(level)
        if self.discount < 1 and not self.optimizer.state:
            with torch.no_grad():
                self.value.output_bias().fill_(level)
        self.value.return_low.fill_(min(float(data.reward.min()), 0.0) * horizon)
        self.value.return_high.fill_(max(float(data.reward.max()), 0.0) * horizon)
        states, fixed = batch.obs, batch.obs.new_zeros(0)
        if imagined is not None:
            states, fixed = torch.cat([batch.obs, imagined[0]]), imagined[1].float()
        size = min(self.config.batch_size, len(states))
        loss = torch.zeros(())
        for _ in range(self.config.rounds):
            frozen = copy.deepcopy(self.value)
            with torch.no_grad():  # each member bootstraps from its own frozen copy
                next_values = frozen.by_member(batch.next_obs)
                next_values = next_values.clamp(frozen.return_low, frozen.return_high)
            logged = self._lambda_returns(data, linked, next_values.cpu().numpy())
            logged = torch.as_tensor(logged, device=device)
            targets = torch.cat([logged, fixed.expand(len(logged), -1)], dim=1)
            for _ in range(self.config.passes):
                loss = self._one_pass(states, targets, size, rng)
        if self.config.unsupported == "level":  # what `forward` needs to tell support apart
            with torch.no_grad():
                each = self.value.by_member(states)
                self.value.fit_error.fill_(((each - targets) ** 2).mean().sqrt())
                if self.value.members > 1:
                    self.value.spread_limit.fill_(each[:, : len(batch)].std(0).max())
        return float(loss.detach())

    def _check(self, data: TransitionBatch[np.ndarray]) -> None:
        """Score the current V on the transitions added since its last fit (the tail of `data`,
        which grows by appending) and set whether the planner may use it."""
        start, fitted = int(self.value.fitted_on), bool(self.optimizer.state)
        self.value.fitted_on.fill_(len(data))
        if not fitted or not 0 < start < len(data):
            return  # nothing it was not fitted on, or the data was cut back: no new verdict
        r2 = predictive_r2(self.value, data[start:], self.discount)
        if r2 is not None:
            self.value.checked_r2.fill_(r2)
            self.value.trusted.fill_(r2 >= self.config.trust)

    def _one_pass(
        self, states: torch.Tensor, targets: torch.Tensor, size: int, rng: np.random.Generator
    ) -> torch.Tensor:
        """One pass over `states` in shuffled minibatches; returns the last minibatch's loss."""
        order = torch.as_tensor(rng.permutation(len(states)), device=states.device)
        loss = torch.zeros(())
        for start in range(0, len(states), size):
            rows = order[start : start + size]
            loss = ((self.value.by_member(states[rows]) - targets[:, rows]) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        return loss

    def reset(self, seed: int) -> None:
        """Fresh weights (drawn from `seed`, so a resumed run redraws the same) and a fresh
        optimiser, as if the value had never been fitted."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.value.net.modules():
                if isinstance(layer, (nn.Linear, EnsembleLinear)):
                    layer.reset_parameters()
        self.optimizer = torch.optim.Adam(self.value.parameters(), lr=self.config.learning_rate)

    def _lambda_returns(
        self, data: TransitionBatch[np.ndarray], linked: np.ndarray, next_values: np.ndarray
    ) -> np.ndarray:
        """TD(lambda) targets (members x N) from each member's values of the next states
        (members x N), computed backwards through the time-ordered transitions."""
        lam, reward = self.config.td_lambda, data.reward.astype(np.float64)
        continues = self.discount * (~data.terminated.astype(bool))
        targets = np.empty(next_values.shape, dtype=np.float32)
        later = np.zeros(len(next_values))
        for t in range(len(reward) - 1, -1, -1):
            bootstrap = next_values[:, t]
            onward = (1 - lam) * bootstrap + lam * later if linked[t] else bootstrap
            later = reward[t] + continues[t] * onward
            targets[:, t] = later
        return targets


@torch.no_grad()
def predictive_r2(value: StateValue, data: TransitionBatch[np.ndarray], discount: float):
    """R-squared of V's predictions on `data` against the discounted returns that followed
    (an episode cut before its end continues at V of where it was cut), with the logged level
    V was fitted at as the baseline prediction. Only states whose return is at least half real
    reward count (those at least ln 2 / (1 - discount) steps before a cut); None if none do, or
    if they all return exactly the level."""
    device = value.obs_mean.device
    predicted = value(torch.as_tensor(data.obs, device=device)).double().cpu().numpy()
    at_cut = value(torch.as_tensor(data.next_obs, device=device)).double().cpu().numpy()
    returns, weight_left = _returns_to_cut(data, _linked(data), discount, at_cut)
    mostly_real = weight_left <= 0.5
    baseline = ((float(value.level) - returns[mostly_real]) ** 2).sum()
    if not mostly_real.any() or baseline == 0:
        return None
    error = ((predicted[mostly_real] - returns[mostly_real]) ** 2).sum()
    return float(1.0 - error / baseline)


def logged_level(data: TransitionBatch[np.ndarray], linked: np.ndarray, discount: float) -> float:
    """The mean over logged states of the discounted return to their episode's end, where an
    episode that did not terminate (cut by a time limit, or the data's end) continues at this
    same mean L: with G_t = A_t + P_t L (A_t the discounted logged rewards, P_t the discount
    left at the cut, 0 after a termination), L = mean(A) / (1 - mean(P))."""
    returns, carried = _returns_to_cut(data, linked, discount, np.zeros(len(data.reward)))
    return float(returns.mean() / (1.0 - carried.mean()))


def _returns_to_cut(
    data: TransitionBatch[np.ndarray], linked: np.ndarray, discount: float, at_cut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per transition, the discounted return to its episode's end, an episode that did not
    terminate continuing at `at_cut` (of the transition where it was cut), and the discount
    left at that cut (0 after a termination)."""
    reward = data.reward.astype(np.float64)
    continues = discount * (~data.terminated.astype(bool))
    returns, carried = np.empty(len(reward)), np.empty(len(reward))
    later, later_carried = 0.0, 0.0
    for t in range(len(reward) - 1, -1, -1):
        if not linked[t]:
            later, later_carried = at_cut[t], 1.0
        later, later_carried = reward[t] + continues[t] * later, continues[t] * later_carried
        returns[t], carried[t] = later, later_carried
    return returns, carried


def _linked(data: TransitionBatch[np.ndarray]) -> np.ndarray:
    """Whether transition t + 1 continues the episode of transition t (same trajectory)."""
    linked = ~(data.terminated.astype(bool) | data.truncated.astype(bool))
    same = np.all(data.next_obs[:-1] == data.obs[1:], axis=1)
    linked[:-1] &= same
    linked[-1:] = False
    return linked


def episode_discount(
    data: TransitionBatch[np.ndarray], base: float, scale: float, episodes: int = 5
) -> float:
    """The discount whose horizon 1 / (1 - discount) is `scale` times the mean length of the
    last `episodes` complete logged episodes, never below `base`'s."""
    ends = np.flatnonzero(data.terminated.astype(bool) | data.truncated.astype(bool))
    if len(ends) == 0:
        return base
    lengths = np.diff(np.concatenate([[-1], ends]))[-episodes:]
    return max(base, 1.0 - 1.0 / (scale * float(lengths.mean())))
