"""A learned final judge: one score per answer from the learned judges' scores of it.

Each judge alone (the proxy reward, the value model, the PRM's last step, the generator's own
likelihood) sees a different side of an answer, and averaging their within-pool ranks counts
them equally whether or not they deserve it. The blend learns how much each one counts:
weights fitted so that a softmax pick over a pool of the policy's samples has the highest
expected gold score (a listwise objective, as in ListNet), on prompts of their own. A linear
score cannot say "trust the proxy only where the likelihood is high" (a gate, which is what
the rule-gated control does with its legality rule); an optional small tanh layer added to the
linear score can. The fitted scorer reads no rule and no target; gold scores are only its
training labels, as they are the proxy's and the PRM's.
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
    """score(answer) = z @ weights + tanh(z @ hidden_in + hidden_bias) @ hidden_out, where
    z = (judge scores - mean) / std; without a hidden layer only the linear term."""

    judges: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    hidden_in: np.ndarray | None = None
    """judges x H input weights of the hidden layer (None: a linear blend)."""
    hidden_bias: np.ndarray | None = None
    """H biases of the hidden layer."""
    hidden_out: np.ndarray | None = None
    """H output weights of the hidden layer."""

    def score(self, features: np.ndarray) -> np.ndarray:
        """One score per answer from its judges' scores (`features`: answers x judges)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.judges):
            raise ValueError(
                f"expected answers x {len(self.judges)} judge scores, got {features.shape}"
            )
        z = (features - self.mean) / self.std
        linear = z @ self.weights
        if self.hidden_in is None:
            return linear
        return linear + np.tanh(z @ self.hidden_in + self.hidden_bias) @ self.hidden_out

    def to_dict(self) -> dict:
        out = {"judges": list(self.judges)}
        for name in _ARRAYS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> JudgeBlend:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in _ARRAYS if k in data}
        blend = cls(tuple(data["judges"]), **arrays)
        hidden = [blend.hidden_in, blend.hidden_bias, blend.hidden_out]
        if any(h is None for h in hidden) and any(h is not None for h in hidden):
            raise ValueError("a hidden layer needs hidden_in, hidden_bias and hidden_out")
        return blend


_ARRAYS = ("mean", "std", "weights", "hidden_in", "hidden_bias", "hidden_out")


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
    hidden: int = 0,
    steps: int = 500,
    l2: float = 1e-3,
    lr: float = 0.05,
    seed: int = 0,
) -> JudgeBlend:
    """Weights that maximise the expected gold of a softmax pick within each pool.

    `features`: prompts x samples x judges, `gold`: prompts x samples. Features are
    standardised over all answers first, so the weights say how much each judge counts.
    `hidden` > 0 adds that many tanh units to the linear score; their output weights start at
    zero, so the fit starts from the linear blend's starting point (`seed` draws their inputs).
    """
    import torch

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3 or x.shape[:2] != np.shape(gold) or x.shape[2] != len(judges):
        raise ValueError(f"features {x.shape} do not match gold {np.shape(gold)} and {judges}")
    flat = x.reshape(-1, x.shape[2])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    z = torch.tensor((x - mean) / std, dtype=torch.float64)  # prompts x samples x judges
    g = torch.tensor(np.asarray(gold), dtype=torch.float64)
    w = torch.zeros(len(judges), dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(seed)
    w_in = torch.randn(len(judges), hidden, generator=generator, dtype=torch.float64)
    w_in = (w_in / len(judges) ** 0.5).requires_grad_()
    bias = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
    w_out = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
    params = [w, w_in, bias, w_out] if hidden else [w]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):  # full batch: a few thousand answers, a few judges
        score = z @ w + torch.tanh(z @ w_in + bias) @ w_out  # prompts x samples
        expected_gold = (torch.softmax(score, dim=1) * g).sum(1).mean()
        loss = -expected_gold + l2 * sum((p**2).sum() for p in (w, w_in, w_out))
        opt.zero_grad()
        loss.backward()
        opt.step()
    layer = [p.detach().numpy().copy() for p in (w_in, bias, w_out)] if hidden else [None] * 3
    return JudgeBlend(tuple(judges), mean, std, w.detach().numpy().copy(), *layer)
