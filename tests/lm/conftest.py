"""Tiny random models built offline, saved to disk and loaded back through from_pretrained."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from forethought.lm.artifacts.tokenizer import char_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may reach a hub


def _config(tok, n_positions: int) -> GPT2Config:
    return GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> tuple[str, str]:
    """Paths of a tiny random GPT-2 generator and a tiny GPT-2 reward classifier."""
    root = tmp_path_factory.mktemp("tiny")
    tok = char_tokenizer()
    torch.manual_seed(0)
    gen = GPT2LMHeadModel(_config(tok, 64))
    gen_dir = root / "gen"
    gen.save_pretrained(gen_dir)
    tok.save_pretrained(gen_dir)
    cfg = _config(tok, 64)
    cfg.num_labels = 1
    rm = GPT2ForSequenceClassification(cfg)
    rm_dir = root / "rm"
    rm.save_pretrained(rm_dir)
    tok.save_pretrained(rm_dir)
    return str(gen_dir), str(rm_dir)


@pytest.fixture(scope="session")
def tiny(tiny_dirs):
    """(generator, reward model) loaded from the saved tiny models."""
    from forethought.lm.generator import Generator
    from forethought.lm.rewards import ClassifierReward

    gen_dir, rm_dir = tiny_dirs
    return Generator.from_pretrained(gen_dir), ClassifierReward.from_pretrained(rm_dir)
