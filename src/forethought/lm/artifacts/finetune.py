"""The policy update of self-training: LoRA on (prompt, completion) pairs through TRL's SFTTrainer.

Only completion tokens carry loss (TRL's `completion_only_loss` on prompt-completion data, with
EOS appended to every completion), so the model learns to answer, not to repeat prompts. One
call trains one PEFT adapter and saves it with `save_pretrained`; `load_policy` puts base model
and adapter back together and merges them, so sampling runs at the base model's speed.

The training loop is TRL's and transformers' own; this module only chooses the settings.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from forethought.errors import ConfigError
from forethought.lm import hub
from forethought.lm.generator import Generator


@dataclass(frozen=True)
class LoraSettings:
    """Adapter shape and optimiser schedule for one fine-tune."""

    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lr: float = 1e-3
    """Peak learning rate (linear decay to zero)."""
    epochs: float = 2.0
    """Passes over the filtered data."""
    batch_size: int = 32
    """Sequences per optimiser step."""


@contextmanager
def quiet_renames():
    """PEFT and the Trainer call transformers 5 methods it has renamed (is_gradient_checkpointing
    and friends); the FutureWarning is about their code, with nothing for a user to change."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*gradient_checkpointing.*", category=FutureWarning
        )
        yield


def load_base(base_dir: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = hub.from_pretrained(
        AutoModelForCausalLM.from_pretrained, base_dir, flag="assets", what="base generator"
    )
    tokenizer = hub.from_pretrained(
        AutoTokenizer.from_pretrained, base_dir, flag="assets", what="tokenizer"
    )
    return model, tokenizer


def lora_model(model, lora: LoraSettings, init_adapter: Path | None):
    """A trainable PEFT model: a fresh adapter on every linear layer, or `init_adapter` resumed."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers.pytorch_utils import Conv1D

    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules="all-linear",  # attention and MLP projections; never the output head
        # GPT-2 stores its projections as Conv1D (weights transposed); tell PEFT up front.
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def sft_lora(
    base_dir: str,
    rows: Sequence[dict],
    out_dir: Path,
    lora: LoraSettings,
    *,
    seed: int,
    device: str = "cpu",
    init_adapter: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict:
    """Fine-tune a LoRA adapter on `rows` ({'prompt', 'completion'}) and save it to `out_dir`.

    `init_adapter` continues training an adapter saved earlier instead of starting a new one.
    `on_step(step, total)` is called after every optimiser step (for a progress bar).
    Returns the number of steps, the mean training loss and the seconds taken.
    """
    import datasets
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ConfigError("rows", "no training examples to fine-tune on")
    import torch

    datasets.disable_progress_bars()  # the caller shows its own progress

    class _Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if on_step is not None:
                on_step(state.global_step, state.max_steps)

    start = time.time()
    with tempfile.TemporaryDirectory() as scratch, quiet_renames():
        model, tokenizer = load_base(base_dir)
        torch.manual_seed(seed)  # the new adapter's initialisation
        model = lora_model(model, lora, init_adapter)
        trainer = SFTTrainer(
            model=model,
            args=_sft_config(SFTConfig, lora, scratch, model, seed=seed, device=device),
            train_dataset=datasets.Dataset.from_list(list(rows)),
            processing_class=tokenizer,
            callbacks=[_Steps()],
        )
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    return {
        "examples": len(rows),
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "seconds": round(time.time() - start, 1),
    }


def _sft_config(config_class, lora: LoraSettings, scratch: str, model, *, seed: int, device: str):
    """TRL's settings for one fine-tune: completion-only loss, a linear schedule, no
    checkpoints, logs or progress bars of its own, and every seed set."""
    return config_class(
        output_dir=scratch,  # Trainer wants one; nothing is checkpointed (save_strategy=no)
        per_device_train_batch_size=lora.batch_size,
        num_train_epochs=lora.epochs,
        learning_rate=lora.lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        completion_only_loss=True,
        max_length=getattr(model.config, "n_positions", None) or 1024,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
    )


def load_policy(
    base_dir: str,
    adapter_dir: Path | None,
    *,
    device: str = "cpu",
    temperature: float = 1.0,
) -> Generator:
    """The base model with `adapter_dir` merged in (or the base alone when it is None)."""
    model, tokenizer = load_base(base_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        if not (Path(adapter_dir) / "adapter_config.json").exists():
            raise ConfigError("adapter", f"no PEFT adapter at {adapter_dir}")
        with quiet_renames():
            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return Generator(model, tokenizer, device=device, temperature=temperature)
