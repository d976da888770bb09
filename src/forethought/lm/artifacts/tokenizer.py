"""Small tokenizers built offline, saved and loaded like any hub tokenizer.

`char_tokenizer` gives one token per character (the tests' tiny random models use it).
`countdown_tokenizer` makes every whole number below `max_number` a single token as well, so
the shipped Countdown generator learns an arithmetic fact such as 7+8=15 as one prediction
instead of a digit-by-digit one; at this model size that is the difference between learning the
facts in minutes and not learning them at all. Both are ordinary `PreTrainedTokenizerFast`s, so
`AutoTokenizer.from_pretrained` loads them.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
COUNTDOWN_ALPHABET = "0123456789+-*/=,;:> "


def _build(pieces: list[str], split: str) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *dict.fromkeys(pieces)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # Split text into pieces matching `split`; Fuse joins decoded pieces without separators.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(split), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def char_tokenizer(alphabet: str = COUNTDOWN_ALPHABET) -> PreTrainedTokenizerFast:
    """Tokenizer whose tokens are the special tokens followed by each character of `alphabet`."""
    return _build(list(alphabet), ".")


def countdown_tokenizer(max_number: int = 100) -> PreTrainedTokenizerFast:
    """Whole numbers 0..max_number-1 as single tokens plus every character of the alphabet.

    A longer number (never produced by the task's rules) falls back to `<unk>`.
    """
    numbers = [str(i) for i in range(max_number)]
    return _build(numbers + list(COUNTDOWN_ALPHABET), r"\d+|.")
