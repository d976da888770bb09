"""Loading a Hugging Face model or tokenizer by hub name or local path, with one-line errors.

Every model the language track reads (generator, reward model, value model, fine-tune base)
goes through `from_pretrained` here, so a wrong path, a directory that holds no model, or a
checkpoint whose head would start from random weights is refused the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forethought.errors import ConfigError


def _looks_local(name_or_path: str) -> bool:
    return os.sep in name_or_path or name_or_path.startswith(".") or Path(name_or_path).exists()


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def from_pretrained(
    load: Callable[..., Any], name_or_path: str, *, flag: str, what: str, **kwargs
) -> Any:
    """`load(name_or_path, **kwargs)` (a transformers `from_pretrained`), or a one-line
    `ConfigError` naming `flag` that says why the path holds no loadable `what`."""
    if _looks_local(name_or_path):
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(flag, f"cannot load the {what} from {path}: no such directory")
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ConfigError(
                flag,
                f"cannot load the {what} from {path}: it holds no saved model (no config.json); "
                "give a directory written by save_pretrained",
            )
    try:
        return load(name_or_path, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set, so only local paths and cached models load)"
        raise ConfigError(
            flag,
            f"cannot load the {what} {name_or_path!r}: {_first_line(err)}{hint if offline else ''}",
        ) from err


def load_dtype(device: str) -> dict[str, Any]:
    """Keyword arguments that load weights as float32 on CPU, whatever dtype they were saved in
    (float16 matmuls on a CPU are slow or unsupported); other devices keep the saved dtype."""
    import torch

    return {"dtype": torch.float32} if str(device).startswith("cpu") else {}


def classifier_from_pretrained(name_or_path: str, *, flag: str, what: str, device: str = "cpu"):
    """A sequence classifier whose score head was trained: a checkpoint without one (a causal
    LM, say) would get a freshly initialised head, and its scores would be noise."""
    from transformers import AutoModelForSequenceClassification

    model, info = from_pretrained(
        AutoModelForSequenceClassification.from_pretrained,
        name_or_path,
        flag=flag,
        what=what,
        output_loading_info=True,
        **load_dtype(device),
    )
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise ConfigError(
            flag,
            f"{name_or_path} holds no trained classification head ({', '.join(missing[:3])} "
            "would start from random weights, so its scores would be noise); pass a sequence "
            "classifier trained as a reward or value model, not a causal LM",
        )
    return model
