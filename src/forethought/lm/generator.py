"""A sampler around any Hugging Face causal LM, with every generated token counted.

Search strategies work on `Candidate`s: a prompt's token ids plus the tokens sampled so far.
Keeping token ids (not text) is what makes continuation exact: a partial branch is extended
from the very tokens that were sampled, never from a re-tokenisation of its decoded text.

When every row of a call continues the same context (Best-of-N, the first round of a search),
the context is read once and its KV cache is copied to all rows. Branches that differ are
re-read in full on continuation: for the small models here that prefill is cheap, and prefill
is never counted as generated tokens either way.

Shapes: a batch of R rows is left-padded to `R x T` so that every row's last real token sits
in the final column; generation appends `R x max_new_tokens` after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import transformers.generation.utils
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

from forethought.errors import ConfigError
from forethought.lm import hub
from forethought.lm.budget import Account

# transformers renamed generate's `past_key_values` to `cache` (the old name warns, then goes).
CACHE_KWARG = (
    "cache"
    if "cache" in getattr(transformers.generation.utils, "ALL_CACHE_NAMES", ())
    else "past_key_values"
)


@dataclass(frozen=True)
class Candidate:
    """One (possibly partial) response to a prompt."""

    prompt: str
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...] = ()
    text: str = ""
    finished: bool = False
    """True once the model emitted end-of-sequence or the response reached `cap` tokens."""
    cap: int | None = None
    """Most tokens this response may have (the max_new_tokens it was started with)."""
    meta: dict = field(default_factory=dict, compare=False)
    logprob: float = field(default=0.0, compare=False)
    """Summed log-probability of `token_ids` under the sampling distribution (a step's prior in tree search is a child's minus its parent's)."""
    token_logprobs: tuple[float, ...] = field(default=(), compare=False)
    """Each sampled token's log-probability, as sampling recorded it (empty if not sampled)."""


class _StopAfterToken(StoppingCriteria):
    """Per-row stop when the last sampled token is a step delimiter (for step-wise search)."""

    def __init__(self, stop_ids: set[int]):
        self.stop_ids = torch.tensor(sorted(stop_ids))

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, -1], self.stop_ids.to(input_ids.device))  # (R,) bool


class Generator:
    """Batched sampling and continuation for a causal LM; `from_pretrained` loads by name/path."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: str = "cpu",
        temperature: float = 1.0,
        top_k: int | None = None,
        use_chat_template: bool = True,
        batch_size: int = 64,
        share_prompt_cache: bool = True,
    ):
        if temperature <= 0:
            raise ConfigError("temperature", f"must be > 0 for sampling, got {temperature}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.temperature = temperature
        self.top_k = top_k
        self.use_chat_template = use_chat_template
        self.batch_size = batch_size
        self.share_prompt_cache = share_prompt_cache
        self.eos_id = tokenizer.eos_token_id
        # Models without a pad token (GPT-2) pad with EOS; counting stops at the first EOS anyway.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        cfg = model.config
        self.context_window = int(
            getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", 0) or 2048
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str = "cpu", flag: str = "--model", **kwargs
    ) -> Generator:
        """Load a hub name or a local directory through transformers' own loader; a path that
        holds no causal LM is a one-line error naming `flag`."""
        model = hub.from_pretrained(
            AutoModelForCausalLM.from_pretrained,
            name_or_path,
            flag=flag,
            what="generator",
            **hub.load_dtype(device),
        )
        tokenizer = hub.from_pretrained(
            AutoTokenizer.from_pretrained, name_or_path, flag=flag, what="tokenizer"
        )
        return cls(model, tokenizer, device=device, **kwargs)

    # -- prompts ------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> tuple[int, ...]:
        """Token ids of `prompt`, wrapped in the tokenizer's chat template when it has one."""
        if self.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return tuple(self.tokenizer(prompt)["input_ids"])

    def start(self, prompt: str, n: int, max_new_tokens: int) -> list[Candidate]:
        """`n` empty candidates for `prompt`; fails if the prompt leaves no room to generate."""
        ids = self.encode_prompt(prompt)
        if max_new_tokens >= self.context_window:
            raise ConfigError(
                "max_new_tokens",
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                f"context window of {self.context_window} tokens; lower max_new_tokens",
            )
        if len(ids) + max_new_tokens > self.context_window:
            raise ConfigError(
                "PROMPT",
                f"prompt is {len(ids)} tokens and max_new_tokens={max_new_tokens}, which exceeds "
                f"the model's context window of {self.context_window} tokens; shorten the prompt "
                f"to at most {self.context_window - max_new_tokens} tokens or lower max_new_tokens",
            )
        return [Candidate(prompt, ids, cap=max_new_tokens) for _ in range(n)]

    def generate(
        self, prompt: str, n: int, max_new_tokens: int, account: Account
    ) -> list[Candidate]:
        """Sample `n` full responses (up to `max_new_tokens` each)."""
        return self.extend(self.start(prompt, n, max_new_tokens), max_new_tokens, account)

    # -- sampling -----------------------------------------------------------------------------
    def extend(
        self,
        candidates: list[Candidate],
        max_new_tokens: int,
        account: Account,
        *,
        stop_ids: set[int] | None = None,
        max_total_tokens: int | None = None,
    ) -> list[Candidate]:
        """Continue every unfinished candidate by up to `max_new_tokens` tokens.

        `stop_ids` ends a row early after a step delimiter (the row stays unfinished).
        `max_total_tokens` stops this call's growth at that response length (a search's next
        checkpoint); the row stays unfinished unless it also reached its own `cap`.
        Finished candidates are returned unchanged. Order is preserved.
        """
        room = {}  # row -> tokens it may still sample in this call
        for i, c in enumerate(candidates):
            cap = max_new_tokens
            for limit in (max_total_tokens, c.cap):
                if limit is not None:
                    cap = min(cap, limit - len(c.token_ids))
            if not c.finished and cap > 0:
                room[i] = cap
        if not room:
            return list(candidates)
        account.reserve_tokens(sum(room.values()))  # worst case, checked before sampling
        out = list(candidates)
        # Rows with the same room share a generate() call, so no row samples past its own cap.
        for cap in sorted(set(room.values())):
            rows = [i for i, r in room.items() if r == cap]
            for lo in range(0, len(rows), self.batch_size):
                chunk = rows[lo : lo + self.batch_size]
                new = self._sample([candidates[i] for i in chunk], cap, stop_ids)
                for i, (toks, logprobs) in zip(chunk, new, strict=True):
                    out[i] = self._append(candidates[i], toks, logprobs)
                    account.charge_tokens(len(toks))
        return out

    def _append(self, cand: Candidate, toks: list[int], logprobs: list[float]) -> Candidate:
        ids = cand.token_ids + tuple(toks)
        finished = bool(toks) and toks[-1] == self.eos_id
        if cand.cap is not None and len(ids) >= cand.cap:
            finished = True
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return replace(
            cand,
            token_ids=ids,
            text=text,
            finished=finished,
            logprob=cand.logprob + float(sum(logprobs)),
            token_logprobs=cand.token_logprobs + tuple(logprobs),
        )

    def _batch(self, cands: list[Candidate]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded `R x T` input ids and attention mask for prompt + tokens so far."""
        seqs = [c.prompt_ids + c.token_ids for c in cands]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        if width > self.context_window:
            raise ConfigError("PROMPT", f"sequence of {width} tokens exceeds the context window")
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def _sample(
        self, cands: list[Candidate], max_new_tokens: int, stop_ids: set[int] | None
    ) -> list[tuple[list[int], list[float]]]:
        """Sampled tokens of each row and the log-probability of each."""
        ids, mask = self._batch(cands)
        max_new_tokens = min(max_new_tokens, self.context_window - ids.shape[1])
        if max_new_tokens < 1:
            return [([], []) for _ in cands]
        kwargs = {}
        if (
            self.share_prompt_cache
            and len(cands) > 1
            and ids.shape[1] > 1
            and bool((ids == ids[:1]).all())
        ):
            # Every row continues the same context (Best-of-N, a search's first round): read it
            # once and copy its KV cache to all rows instead of prefilling it R times.
            cache = self._shared_cache(ids[:1, :-1], len(cands))
            if cache is not None:
                kwargs[CACHE_KWARG] = cache
        if stop_ids:
            kwargs["stopping_criteria"] = [_StopAfterToken(stop_ids)]
        seq = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=self.temperature,
            top_k=self.top_k if self.top_k is not None else 0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            output_scores=True,
            return_dict_in_generate=True,
            **kwargs,
        )
        # Log-probabilities of the sampled tokens under the processed (sampling) distribution.
        token_logprobs = self.model.compute_transition_scores(
            seq.sequences, seq.scores, normalize_logits=True
        )  # R x <=max_new_tokens
        new = seq.sequences[:, ids.shape[1] :].tolist()  # R x <=max_new_tokens
        ends = {self.eos_id} | (stop_ids or set())
        kept = []
        for row, logprobs in zip(new, token_logprobs.tolist(), strict=True):
            # Keep tokens up to and including the first EOS or step delimiter: whatever follows
            # is padding written after the row stopped, which was never sampled for it.
            cut = next((j + 1 for j, t in enumerate(row) if t in ends), len(row))
            kept.append((row[:cut], logprobs[:cut]))
        return kept

    def _shared_cache(self, context: torch.Tensor, rows: int):
        """KV cache of `context` (1 x T) repeated for `rows` rows, or None if unsupported."""
        cache = self.model(input_ids=context, use_cache=True).past_key_values
        if not hasattr(cache, "batch_repeat_interleave"):
            return None  # a model with a legacy cache format: fall back to a full prefill
        cache.batch_repeat_interleave(rows)
        return cache

    def prefix(self, cand: Candidate, k: int) -> Candidate:
        """The first `k` generated tokens of `cand` (all of it when k >= its length)."""
        if k >= len(cand.token_ids):
            return cand
        ids = cand.token_ids[:k]
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        kept = cand.token_logprobs[:k]
        # Recorded per token: the prefix's own sum (0 for no tokens); else the whole answer's.
        logprob = float(sum(kept)) if cand.token_logprobs else cand.logprob
        return replace(
            cand, token_ids=ids, text=text, finished=False, logprob=logprob, token_logprobs=kept
        )

    # -- features for the hidden-state value probe ---------------------------------------------
    @torch.no_grad()
    def hidden_states(self, cands: list[Candidate]) -> np.ndarray:
        """Last-layer features of each prompt + response: `R x 2H` float32.

        The first H columns are the state at the last token (what the model is about to do), the
        last H the mean over all real tokens (what it has done so far: an early arithmetic slip
        stays visible there). On held-out Countdown samples the pair ranks answers better than
        the last-token state alone (see benchmarks/results/lm_search.json).
        """
        feats = []
        for lo in range(0, len(cands), self.batch_size):
            ids, mask = self._batch(cands[lo : lo + self.batch_size])
            # Left padding shifts positions; give each row positions counted from its first token.
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            outputs = self.model(
                input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True
            )
            h = outputs.hidden_states[-1].float()  # R x T x H
            m = mask.unsqueeze(-1).float()  # R x T x 1
            mean = (h * m).sum(1) / m.sum(1)  # R x H, padding excluded
            feats.append(torch.cat([h[:, -1, :], mean], dim=-1).cpu().numpy())  # R x 2H
        return np.concatenate(feats, axis=0)
