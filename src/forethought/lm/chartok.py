"""A character-level tokenizer built offline, saved and loaded like any hub tokenizer.

The shipped Countdown models and the tests' tiny random models use it: one token per character
keeps the vocabulary tiny (so the models stay a few MB) and makes token counts easy to reason
about. It is an ordinary `PreTrainedTokenizerFast`, so `AutoTokenizer.from_pretrained` loads it.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
COUNTDOWN_ALPHABET = "0123456789+-*/=,;:> "


def char_tokenizer(alphabet: str = COUNTDOWN_ALPHABET) -> PreTrainedTokenizerFast:
    """Tokenizer whose tokens are the special tokens followed by each character of `alphabet`."""
    chars = list(dict.fromkeys(alphabet))  # dedupe, keep order
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *chars])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # Split every character into its own piece; Fuse joins them back without separators.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
