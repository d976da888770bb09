"""Scorers: reward models, programmatic verifiers and plain callables behind one interface.

Every scorer maps a batch of candidates to `R` floats (higher is better). Calling a scorer
through `Scorer.__call__` charges the account first (one call per sequence scored, booked under
the scorer's `kind`: 'reward' or 'value'), then checks the scores are finite: a reward model
that returns NaN is a broken model, and ranking by NaN would silently pick at random.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoTokenizer

from forethought.errors import ConfigError, DataError
from forethought.lm import hub
from forethought.lm.budget import Account
from forethought.lm.generator import Candidate


class Scorer(ABC):
    """Base: subclasses implement `_score(cands) -> R floats`; `__call__` adds accounting."""

    kind: str = "reward"
    name: str = "scorer"

    @abstractmethod
    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        """R scores for R candidates (each subclass: a model, a verifier, a callable)."""

    def __call__(self, cands: Sequence[Candidate], account: Account | None = None) -> np.ndarray:
        if not cands:
            return np.zeros(0, dtype=np.float64)
        if account is not None:
            account.charge_calls(self.kind, len(cands))
        scores = np.asarray(self._score(cands), dtype=np.float64).reshape(-1)
        if scores.shape[0] != len(cands):
            raise DataError(
                f"{self.name} returned {scores.shape[0]} scores for {len(cands)} inputs"
            )
        bad = ~np.isfinite(scores)
        if bad.any():
            first = cands[int(np.argmax(bad))]
            raise DataError(
                f"{self.name} returned a non-finite score (NaN or inf) for {int(bad.sum())} of "
                f"{len(cands)} sequences, e.g. for response {first.text[:60]!r}; check the reward "
                "model's weights and dtype (float16 overflow is a common cause)"
            )
        return scores


class ClassifierReward(Scorer):
    """A Hugging Face sequence-classification reward model on `template.format(prompt, response)`.

    One output logit is the reward; with two, the reward is logit[1] - logit[0] (log-odds of
    'good'). With `kind='value'` the same class serves a value model that scores prefixes.
    Texts longer than the model's context are an error, not silently truncated, because
    truncation would score a different text than the one being judged.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        template: str = "{prompt}{response}",
        device: str = "cpu",
        batch_size: int = 64,
        name: str = "reward model",
        kind: str = "reward",
    ):
        if kind not in ("reward", "value"):
            raise ConfigError("kind", f"must be 'reward' or 'value', got {kind!r}")
        self.kind = kind  # a value model on prefixes books its calls as value calls
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:  # GPT-2-style tokenizers: pad with EOS
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.template, self.device, self.batch_size, self.name = template, device, batch_size, name
        cfg = model.config
        self.max_length = int(
            getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", 0) or 512
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, flag: str = "--reward", **kwargs
    ) -> ClassifierReward:
        """Load a sequence classifier by hub name or local path. A checkpoint without a trained
        score head (a causal LM, say) is refused: its head would be random and its scores noise."""
        what = kwargs.get("name", "reward model")
        device = kwargs.get("device", "cpu")
        model = hub.classifier_from_pretrained(name_or_path, flag=flag, what=what, device=device)
        tokenizer = hub.from_pretrained(
            AutoTokenizer.from_pretrained, name_or_path, flag=flag, what="tokenizer"
        )
        kwargs.setdefault("name", f"reward model {name_or_path}")
        return cls(model, tokenizer, **kwargs)

    @torch.no_grad()
    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        texts = [self.template.format(prompt=c.prompt, response=c.text) for c in cands]
        out = []
        for lo in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[lo : lo + self.batch_size], return_tensors="pt", padding=True
            )
            if enc["input_ids"].shape[1] > self.max_length:
                raise ConfigError(
                    "reward",
                    f"a scored text is {enc['input_ids'].shape[1]} tokens, longer than the reward "
                    f"model's context of {self.max_length}; lower max_new_tokens or shorten prompts",
                )
            logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits  # B x L
            logits = logits.float()
            out.append(logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0])
        return torch.cat(out).cpu().numpy()


class FunctionReward(Scorer):
    """Any Python function as a scorer: a programmatic verifier or a custom reward.

    `fn(prompt, response) -> float` by default; with `batched=True`,
    `fn(prompts, responses) -> sequence of floats`. `kind='value'` books calls as value calls.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        batched: bool = False,
        kind: str = "reward",
        name: str = "verifier",
    ):
        if kind not in ("reward", "value"):
            raise ConfigError("kind", f"must be 'reward' or 'value', got {kind!r}")
        self.fn, self.batched, self.kind, self.name = fn, batched, kind, name

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        if self.batched:
            return np.asarray(self.fn([c.prompt for c in cands], [c.text for c in cands]))
        return np.array([self.fn(c.prompt, c.text) for c in cands], dtype=np.float64)


class RuleGated(Scorer):
    """A scorer behind a rule check: candidates that break the rule rank below all that keep it.

    `rule(prompt, text) -> 1.0 | 0.0` is a cheap programmatic check (for Countdown, whether every
    completed step is legal); among candidates with the same verdict the `inner` scorer (a value
    predictor or a reward model) orders them. One call of this scorer is one call of `inner`
    (booked under `inner.kind`); the rule check itself runs on the text and is not a model call.
    """

    def __init__(self, rule: Callable[[str, str], float], inner: Scorer, *, name: str = ""):
        self.rule, self.inner = rule, inner
        self.kind = inner.kind
        self.name = name or f"rule-gated {inner.name}"

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        inner = np.asarray(self.inner._score(cands), dtype=np.float64).reshape(-1)
        ok = np.array([float(self.rule(c.prompt, c.text)) for c in cands])
        # Lexicographic: the verdict first, then the inner score (shifted by more than its spread).
        spread = float(np.ptp(inner)) + 1.0 if np.isfinite(inner).all() else 1.0
        return inner + spread * ok
