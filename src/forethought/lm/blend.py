"""A learned final judge: one linear score over the learned judges' scores of an answer.

Each judge alone (the proxy reward, the value model, the PRM's last step, the generator's own
likelihood) sees a different side of an answer, and averaging their within-pool ranks counts
them equally whether or not they deserve it. The blend learns how much each one counts:
weights fitted so that a softmax pick over a pool of the policy's samples has the highest
expected gold score (a listwise objective, as in ListNet), on prompts of their own. The fitted
scorer reads no rule and no target; gold scores are only its training labels, as they are the
proxy's and the PRM's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forethought.errors import ConfigError

BLEND_JUDGES = ("proxy", "value", "prm-last", "policy")
"""The judges the shipped blend reads, in feature order (all learned; 'policy' costs no call)."""


@dataclass(frozen=True)
class JudgeBlend:
    """score(answer) = sum_j weight_j x (judge_j(answer) - mean_j) / std_j."""

    judges: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray

    def score(self, features: np.ndarray) -> np.ndarray:
        """One score per answer from its judges' scores (`features`: answers x judges)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.judges):
            raise ValueError(
                f"expected answers x {len(self.judges)} judge scores, got {features.shape}"
            )
        return ((features - self.mean) / self.std) @ self.weights

    def to_dict(self) -> dict:
        return {
            "judges": list(self.judges),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weights.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> JudgeBlend:
        return cls(
            tuple(data["judges"]),
            *(np.asarray(data[k], dtype=np.float64) for k in ("mean", "std", "weights")),
        )


def load_blend(path: Path) -> JudgeBlend | None:
    """The blend saved at `path` (blend.json), or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return JudgeBlend.from_dict(json.loads(path.read_text())["blend"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError("assets", f"{path} is not a judge blend ({err})") from err


def fit_blend(
    features: np.ndarray,
    gold: np.ndarray,
    judges: tuple[str, ...] = BLEND_JUDGES,
    *,
    steps: int = 500,
    l2: float = 1e-3,
    lr: float = 0.05,
) -> JudgeBlend:
    """Weights that maximise the expected gold of a softmax pick within each pool.

    `features`: prompts x samples x judges, `gold`: prompts x samples. Features are
    standardised over all answers first, so the weights say how much each judge counts.
    """
    import torch

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3 or x.shape[:2] != np.shape(gold) or x.shape[2] != len(judges):
        raise ValueError(f"features {x.shape} do not match gold {np.shape(gold)} and {judges}")
    flat = x.reshape(-1, x.shape[2])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    xs = torch.tensor((x - mean) / std, dtype=torch.float64)
    g = torch.tensor(np.asarray(gold), dtype=torch.float64)
    w = torch.zeros(len(judges), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):  # full batch: a few thousand answers, a few judges
        expected_gold = (torch.softmax(xs @ w, dim=1) * g).sum(1).mean()
        loss = -expected_gold + l2 * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return JudgeBlend(tuple(judges), mean, std, w.detach().numpy().copy())
