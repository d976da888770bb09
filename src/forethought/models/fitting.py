"""Fitting the ensemble: bootstrapped member batches, a holdout split, early stopping.

Each member trains on its own bootstrap resample of the training set (so members disagree
where data is thin), all members in the same batched forward pass. After every epoch the
holdout error of each member is measured; a member's weights are kept from its best epoch,
and fitting stops once no member has improved for `patience` epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from forethought.errors import DataError, require
from forethought.models.dynamics import DynamicsModel
from forethought.types import TransitionBatch

MIN_RELATIVE_IMPROVEMENT = 0.01  # a member "improves" only if holdout error drops by 1%


@dataclass(frozen=True)
class FitConfig:
    """How the dynamics ensemble is trained."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 5e-5
    """Adam weight decay (L2) on all parameters."""
    batch_size: int = 64
    """Rows per member per gradient step."""
    max_epochs: int = 100
    """Upper bound on passes over the training set per fit."""
    patience: int = 8
    """Stop after this many epochs in which no member's holdout error improved by 1%."""
    holdout_fraction: float = 0.2
    """Fraction of the buffer held out for early stopping and the reported holdout loss."""
    bootstrap: bool = True
    """Train each member on its own resample-with-replacement of the training set."""
    max_seconds: float = 60.0
    """Wall-clock cap on one fit (seconds)."""
    nll_beta: float = 0.5
    """beta-NLL weight exponent for probabilistic models (0 = plain Gaussian NLL as in PETS)."""

    def validate(self) -> None:
        require(self.learning_rate > 0, "fit.learning_rate", "must be positive")
        require(self.weight_decay >= 0, "fit.weight_decay", "must be non-negative")
        require(self.batch_size >= 1, "fit.batch_size", "must be at least 1")
        require(self.max_epochs >= 1, "fit.max_epochs", "must be at least 1")
        require(self.patience >= 1, "fit.patience", "must be at least 1")
        require(0.0 < self.holdout_fraction < 1.0, "fit.holdout_fraction", "must be in (0, 1)")
        require(self.max_seconds > 0, "fit.max_seconds", "must be positive")
        require(0.0 <= self.nll_beta <= 1.0, "fit.nll_beta", "must be in [0, 1]")


@dataclass(frozen=True)
class FitReport:
    """What one call to `ModelTrainer.fit` did."""

    epochs: int
    gradient_steps: int
    train_loss: float
    holdout_error: float  # mean over members of the normalised holdout MSE
    holdout_error_per_member: list[float]
    holdout_nll: float  # mean over members of the holdout Gaussian NLL (== MSE if deterministic)
    holdout_surprise: float  # mean of DynamicsModel.surprise over the holdout rows
    seconds: float
    train_size: int
    holdout_size: int


@dataclass
class _Split:
    """The data of one fit, on the model's device."""

    inputs: torch.Tensor  # N x In
    targets: torch.Tensor  # N x T
    terminated: torch.Tensor  # N
    hold: torch.Tensor  # holdout row indices
    member_rows: torch.Tensor  # E x N_train: the rows each member trains on


class ModelTrainer:
    """Owns the optimiser of a `DynamicsModel` so that it persists across fits and checkpoints."""

    def __init__(self, model: DynamicsModel, config: FitConfig):
        config.validate()
        self.model, self.config = model, config
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )

    def restart(self) -> None:
        """Forget what was learned: fresh network weights and optimiser moments (the
        normalisation statistics stay). Used when the dynamics changed: a model warm-started
        from the old dynamics stays confidently wrong wherever the new data do not reach yet,
        while a fresh ensemble disagrees there, which the planner can see."""
        self.model.reinitialize()
        self.optimizer.state.clear()

    def fit(
        self,
        data: TransitionBatch[np.ndarray],
        rng: np.random.Generator,
        keep_normalization: bool = False,
    ) -> FitReport:
        """Train on `data` (all transitions available) and return a report. With
        `keep_normalization` the model keeps the input/target statistics of its previous fit
        (used when `data` is a handful of transitions after the dynamics changed: statistics
        of so few rows would make every other state look far out of distribution)."""
        if len(data) < 2:
            raise DataError(f"need at least 2 transitions to fit a model, got {len(data)}")
        start = time.perf_counter()
        split = self._split(data, rng, keep_normalization)
        hold_inputs, hold_targets = split.inputs[split.hold], split.targets[split.hold]

        # Early stopping watches the holdout NLL of a probabilistic model (the mean alone can stop
        # improving long before the variance is learned) and the MSE of a deterministic one.
        best_mse, best_score = self.model.holdout_scores(hold_inputs, hold_targets)  # E, E
        best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        epochs_since_improvement, steps, epoch, train_loss = 0, 0, 0, 0.0
        for epoch in range(1, self.config.max_epochs + 1):  # noqa: B007 - reported below
            train_loss, batches = self._epoch(split, rng)
            steps += batches
            mse, score = self.model.holdout_scores(hold_inputs, hold_targets)
            # "Improves by 1%" relative to the score's magnitude (an NLL can be negative).
            improved = score < best_score - MIN_RELATIVE_IMPROVEMENT * best_score.abs()
            if improved.any():
                self._keep_members(best_state, improved)
                best_score = torch.where(improved, score, best_score)
                best_mse = torch.where(improved, mse, best_mse)
                epochs_since_improvement = 0
            else:
                epochs_since_improvement += 1
            if epochs_since_improvement >= self.config.patience:
                break
            if time.perf_counter() - start > self.config.max_seconds:
                break

        self.model.load_state_dict(best_state)
        surprise = self.model.surprise(hold_inputs, hold_targets).mean()
        return FitReport(
            epochs=epoch,
            gradient_steps=steps,
            train_loss=train_loss / self.model.ensemble_size,
            holdout_error=float(best_mse.mean()),
            holdout_error_per_member=[float(x) for x in best_mse],
            holdout_nll=float(best_score.mean()),
            holdout_surprise=float(surprise),
            seconds=time.perf_counter() - start,
            train_size=split.member_rows.shape[1],
            holdout_size=len(split.hold),
        )

    def _split(
        self, data: TransitionBatch[np.ndarray], rng: np.random.Generator, keep_normalization: bool
    ) -> _Split:
        """Model inputs and targets, a random holdout, and each member's (bootstrapped) rows."""
        cfg, model = self.config, self.model
        device = next(model.parameters()).device
        t = data.to_torch(device)
        inputs = model.make_inputs(t.obs, t.action)  # N x In
        targets = model.make_targets(t.obs, t.next_obs, t.reward)  # N x T
        order = torch.as_tensor(rng.permutation(len(data)), device=device)
        n_holdout = max(1, round(cfg.holdout_fraction * len(data)))
        hold, train = order[:n_holdout], order[n_holdout:]
        if not keep_normalization:
            model.set_normalization(inputs[train], targets[train])
        e, n_train = model.ensemble_size, len(train)
        if cfg.bootstrap:
            member_rows = train[
                torch.as_tensor(rng.integers(0, n_train, (e, n_train)), device=device)
            ]
        else:
            member_rows = train.expand(e, n_train)  # E x N_train
        return _Split(inputs, targets, t.terminated, hold, member_rows)

    def _epoch(self, split: _Split, rng: np.random.Generator) -> tuple[float, int]:
        """One pass over every member's rows in minibatches: (mean loss, minibatches)."""
        e, n_train = split.member_rows.shape
        # Each member sees its own rows in its own shuffled order: E x N_train.
        shuffle = torch.as_tensor(
            np.argsort(rng.random((e, n_train)), axis=1), device=split.member_rows.device
        )
        rows = torch.gather(split.member_rows, 1, shuffle)
        loss_sum, loss_count = 0.0, 0
        for begin in range(0, n_train, self.config.batch_size):
            batch_rows = rows[:, begin : begin + self.config.batch_size]  # E x b
            loss = self.model.loss(
                split.inputs[batch_rows],
                split.targets[batch_rows],
                split.terminated[batch_rows],
                self.config.nll_beta,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.item()
            loss_count += 1
        return loss_sum / max(loss_count, 1), loss_count

    def _keep_members(self, best_state: dict[str, torch.Tensor], improved: torch.Tensor) -> None:
        """Copy the current weights of the improved members into `best_state`."""
        e = self.model.ensemble_size
        for name, value in self.model.state_dict().items():
            if value.dim() >= 1 and value.shape[0] == e and name.startswith("net."):
                best_state[name][improved] = value[improved]
            else:  # shared tensors (normalisers, log-variance bounds) follow the latest epoch
                best_state[name] = value.clone()
