"""Exact compute accounting for search over text.

A `Budget` is what a caller allows; an `Account` is what a search has spent. Strategies charge
the account *before* doing work that could overspend: `reserve_tokens` checks the worst case of a
generation call (rows x max_new_tokens) and `charge_*` books what was really used. Because the
check happens first, no strategy can ever end above its budget; the property test in
tests/lm/test_budget_property.py holds every strategy to that.

Three things are counted:
  tokens        tokens sampled by the generator for live rows (prompt prefill is not counted:
                it is re-reading, not generating; padding after a row has stopped is not counted)
  reward_calls  sequences scored by a reward model or verifier (one call = one sequence)
  value_calls   sequences scored by a value predictor on a prefix (cheap, but still reported)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from forethought.errors import ConfigError, ForethoughtError


class BudgetExceeded(ForethoughtError):
    """A strategy asked for more compute than its budget has left."""


@dataclass(frozen=True)
class Budget:
    """Compute a search may spend on one prompt."""

    max_tokens: int
    """Tokens the generator may sample in total, over every candidate and round."""
    max_reward_calls: int | None = None
    """Sequences the reward model may score; None means unlimited (spend is still counted)."""
    max_value_calls: int | None = None
    """Prefixes the value predictor may score; None means unlimited."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError("budget", f"must be at least 1 token, got {self.max_tokens}")
        # Named by the `forethought lm` flags that set them (max_value_calls has none).
        for name, flag in (
            ("max_reward_calls", "reward_calls"),
            ("max_value_calls", "max_value_calls"),
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(flag, f"must be >= 0 or None (unlimited), got {value}")


@dataclass
class Spend:
    """What was spent; plain numbers so it serialises straight to JSON."""

    tokens: int = 0
    reward_calls: int = 0
    value_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Account:
    """Books spending against one `Budget`; raises `BudgetExceeded` instead of overspending."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.spent = Spend()

    # -- what is left -------------------------------------------------------------------------
    @property
    def tokens_left(self) -> int:
        return self.budget.max_tokens - self.spent.tokens

    @property
    def reward_calls_left(self) -> int | None:
        cap = self.budget.max_reward_calls
        return None if cap is None else cap - self.spent.reward_calls

    @property
    def value_calls_left(self) -> int | None:
        cap = self.budget.max_value_calls
        return None if cap is None else cap - self.spent.value_calls

    def calls_left(self, kind: str) -> int | None:
        """Calls left for a scorer of `kind` ('reward' or 'value'); None when unlimited."""
        return self.reward_calls_left if kind == "reward" else self.value_calls_left

    # -- checks and charges -------------------------------------------------------------------
    def reserve_tokens(self, worst_case: int) -> None:
        """Fail before a generation call whose worst case does not fit in what is left."""
        if worst_case > self.tokens_left:
            raise BudgetExceeded(
                f"generation could sample {worst_case} tokens but only {self.tokens_left} of "
                f"budget.max_tokens={self.budget.max_tokens} are left; raise the token budget "
                "or generate fewer/shorter candidates"
            )

    def charge_tokens(self, n: int) -> None:
        if n > self.tokens_left:  # reserve_tokens makes this unreachable for correct callers
            raise BudgetExceeded(f"charged {n} tokens with only {self.tokens_left} left")
        self.spent.tokens += n

    def charge_calls(self, kind: str, n: int) -> None:
        """Book `n` scored sequences for a scorer of `kind`; fails first if they do not fit."""
        left = self.calls_left(kind)
        if left is not None and n > left:
            field = "max_reward_calls" if kind == "reward" else "max_value_calls"
            raise BudgetExceeded(
                f"scoring {n} sequences with the {kind} scorer needs {n} calls but only {left} "
                f"of budget.{field} are left; raise budget.{field} or score fewer candidates"
            )
        if kind == "reward":
            self.spent.reward_calls += n
        elif kind == "value":
            self.spent.value_calls += n
        else:
            raise ValueError(f"unknown scorer kind {kind!r}")

    def affordable_calls(self, kind: str, wanted: int) -> int:
        """How many of `wanted` scorings still fit."""
        left = self.calls_left(kind)
        return wanted if left is None else max(0, min(wanted, left))


@dataclass
class TrainingLedger:
    """Compute a training arm spent, in the units search is budgeted in, so a trained policy
    and a searched one can be compared at matched compute.

    GRPO books its rollouts here; self-training books its searches, the gold labels of what they
    found and the fresh samples that refit its value predictor. Held-out evaluation is never
    booked: it measures a policy, it does not train one.
    """

    tokens: int = 0
    """Tokens sampled by the policy for training (rollouts, searches, refit samples)."""
    reward_calls: int = 0
    """Sequences scored by the training reward (verifier or reward model)."""
    value_calls: int = 0
    """Prefixes scored by a value predictor while training."""
    optimizer_steps: int = 0
    """Parameter updates."""

    def add(self, spend: Spend | None = None, **counts: int) -> None:
        """Book a search's `spend` and/or named counts (tokens=..., optimizer_steps=...)."""
        if spend is not None:
            for name, value in spend.as_dict().items():
                counts[name] = counts.get(name, 0) + value
        for name, value in counts.items():
            setattr(self, name, getattr(self, name) + int(value))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingLedger:
        return cls(
            **{
                k: int(data.get(k, 0))
                for k in ("tokens", "reward_calls", "value_calls", "optimizer_steps")
            }
        )
