"""Process reward model (PRM): how likely a partial answer is to end solved, judged per step.

A PRM is a sequence classifier with one logit, trained (`artifacts/train_prm.py`) on step labels
made by Monte-Carlo completion: from each step prefix of a policy sample, k continuations are
sampled and the label is the fraction that reach the gold answer (as in Math-Shepherd). No
hand-written rule enters the labels or the model.

Scoring reads the head at a text's last token, so the PRM scores a partial answer exactly as a
reward model scores a whole one; `step_scores` reads it at every step end of an answer in the
same forward pass, which is what the aggregated final picks (min / last / product over steps)
need. Scores are probabilities in (0, 1). Calls book as value calls: like a value predictor, a
PRM scores prefixes, and one call is one sequence read once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.lm.budget import Account
from forethought.lm.generator import Candidate
from forethought.lm.rewards import ClassifierReward, Scorer

AGGREGATES = ("min", "last", "prod")
"""How a PRM's step scores become one score for a complete answer."""


class ProcessRewardModel(ClassifierReward):
    """A one-logit sequence classifier read as P(solved | steps so far) at any token."""

    def __init__(self, model, tokenizer, *, step_delimiter: str, **kwargs):
        kwargs.setdefault("name", "process reward model")
        kwargs.setdefault("kind", "value")
        super().__init__(model, tokenizer, **kwargs)
        if model.config.num_labels != 1:
            raise ConfigError(
                "prm",
                f"a process reward model has one output logit, this classifier has "
                f"{model.config.num_labels}; train one with `forethought lm train-prm`",
            )
        ids = tokenizer(step_delimiter, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(
                "step_delimiter",
                f"{step_delimiter!r} is {len(ids)} tokens for this tokenizer; a step delimiter "
                "must be exactly one token so that step ends can be found",
            )
        self.delimiter_id = ids[0]

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, step_delimiter: str, flag: str = "--prm", **kwargs
    ) -> ProcessRewardModel:
        from transformers import AutoTokenizer

        from forethought.lm import hub

        device = kwargs.get("device", "cpu")
        model = hub.classifier_from_pretrained(
            name_or_path, flag=flag, what="process reward model", device=device
        )
        tokenizer = hub.from_pretrained(
            AutoTokenizer.from_pretrained, name_or_path, flag=flag, what="tokenizer"
        )
        return cls(model, tokenizer, step_delimiter=step_delimiter, **kwargs)

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-super()._score(cands)))

    @torch.no_grad()
    def step_scores(
        self, cands: Sequence[Candidate], account: Account | None = None
    ) -> list[np.ndarray]:
        """P(solved) after each completed step of each candidate (its last token too when the
        text does not end on a delimiter); one forward pass, so one call, per candidate."""
        if account is not None:
            account.charge_calls(self.kind, len(cands))
        out = []
        for lo in range(0, len(cands), self.batch_size):
            chunk = cands[lo : lo + self.batch_size]
            texts = [self.template.format(prompt=c.prompt, response=c.text) for c in chunk]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            hidden = self.model.base_model(**enc).last_hidden_state  # B x T x H
            probs = torch.sigmoid(self.model.score(hidden)[..., 0].float()).cpu().numpy()  # B x T
            ids, mask = enc["input_ids"].cpu().numpy(), enc["attention_mask"].cpu().numpy()
            for row, c in enumerate(chunk):
                n_prompt = len(self.tokenizer(c.prompt, add_special_tokens=False)["input_ids"])
                ends = [
                    t
                    for t in np.flatnonzero(mask[row])
                    if t >= n_prompt and ids[row, t] == self.delimiter_id
                ]
                last = int(np.flatnonzero(mask[row])[-1])
                if not ends or ends[-1] != last:
                    ends.append(last)
                out.append(probs[row, ends])
        return out


class AggregatedPRM(Scorer):
    """A complete answer's PRM step scores folded into one (`how`: min, last or prod)."""

    kind = "value"

    def __init__(self, prm: ProcessRewardModel, how: str):
        if how not in AGGREGATES:
            raise ConfigError("final", f"PRM aggregate must be one of {AGGREGATES}, got {how!r}")
        self.prm, self.how = prm, how
        self.name = f"PRM ({how} over steps)"

    def fold(self, step_scores: Sequence[np.ndarray]) -> np.ndarray:
        """One score per answer from its step scores (as `ProcessRewardModel.step_scores`)."""
        fold = {"min": np.min, "last": lambda s: s[-1], "prod": np.prod}[self.how]
        return np.array([float(fold(s)) for s in step_scores])

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        return self.fold(self.prm.step_scores(cands))
