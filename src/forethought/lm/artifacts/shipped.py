"""Where the shipped Countdown models live, and one call that loads them all.

`train-generator` writes a directory with this layout; the package ships one under
`forethought/lm/assets/countdown` (safetensors weights, a few MB in total):

    generator/          GPT-2 causal LM + char tokenizer   (AutoModelForCausalLM)
    proxy/              GPT-2 sequence classifier          (AutoModelForSequenceClassification)
    value_model/        GPT-2 sequence classifier scoring prefixes (AutoModelForSequenceClassification)
    prm/                GPT-2 sequence classifier, P(solved) after each step (optional; `train-prm`)
    prm.json            its held-out step-label accuracy and calibration
    blend.json          the judge blend's weights and its pick check (optional; `train-blend`)
    value_hidden.npz    ridge read-out on generator hidden states
    value_minilm.npz    ridge read-out on MiniLM embeddings
    meta.json           training config, timings and held-out statistics
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from forethought.errors import ConfigError
from forethought.lm.blend import JudgeBlend, load_blend
from forethought.lm.generator import Generator
from forethought.lm.prm import ProcessRewardModel
from forethought.lm.rewards import ClassifierReward, FunctionReward, Scorer
from forethought.lm.tasks import countdown
from forethought.lm.value import RIDGE_KINDS, make_value

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = ASSETS / "countdown"
"""The models installed with the package (package data `lm/assets/**/*`), one directory per
built-in task (`assets/<task name>`); never written by a command unless it is asked to with
`--overwrite-shipped`."""
VALUE_KINDS = ("model", *RIDGE_KINDS)
"""'model': a fine-tuned transformer value model (the default, best ranked on held-out prompts);
'hidden' and 'minilm': a ridge read-out on fixed features (refits in seconds)."""


@dataclass
class CountdownSuite:
    """Everything a Countdown search needs: generator, proxy reward, gold verifier, value."""

    generator: Generator
    proxy: Scorer
    gold: Scorer
    value: Scorer
    delimiters: set[int]
    """Token ids that end a step (for beam search)."""
    task: countdown.CountdownTask = countdown.DEFAULT
    """The Countdown setting the models were trained on (its gold verifier and legality rule)."""
    prm: Scorer | None = None
    """The process reward model under `root/prm`, when one was trained (`lm train-prm`)."""
    blend: JudgeBlend | None = None
    """The learned judges' weights for `--final blend` (`root/blend.json`, from `lm train-blend`)."""


def shipped_root(task: str = "countdown") -> Path:
    """The shipped models of the built-in task called `task`."""
    return ASSETS / countdown.get_task(task).name


def task_of(root: Path) -> countdown.CountdownTask:
    """The Countdown setting the models under `root` were trained on (meta.json's config.task;
    models without one predate the setting and use the default)."""
    meta = Path(root) / "meta.json"
    name = "countdown"
    if meta.exists():
        name = json.loads(meta.read_text()).get("config", {}).get("task", name)
    return countdown.get_task(name)


def check_dir(root: Path) -> Path:
    """`root` if it holds a generator and a proxy reward, else a one-line error saying how to
    make them."""
    root = Path(root)
    if not (root / "generator").is_dir() or not (root / "proxy").is_dir():
        raise ConfigError(
            "assets",
            f"no Countdown models under {root}; run `forethought lm train-generator --out {root}` "
            "or reinstall forethought to get the shipped ones",
        )
    return root


def load_value(kind: str, root: Path, generator: Generator) -> Scorer:
    """The fitted value predictor of `kind` (one of VALUE_KINDS) from `root`."""
    if kind not in VALUE_KINDS:
        raise ConfigError("value", f"must be one of {', '.join(VALUE_KINDS)}, got {kind!r}")
    if kind == "model":
        path = Path(root) / "value_model"
        if not path.is_dir():
            raise ConfigError(
                "value",
                f"no value model under {root}; run `forethought lm train-reward --out {root}` "
                "or pick --value hidden",
            )
        return ClassifierReward.from_pretrained(
            str(path), device=generator.device, kind="value", name="value model", flag="assets"
        )
    return make_value(kind, generator, Path(root) / f"value_{kind}.npz")


def load_rewards(root: Path = SHIPPED, *, device: str = "cpu") -> tuple[Scorer, Scorer]:
    """The proxy reward model under `root` and the gold verifier of its task."""
    proxy = ClassifierReward.from_pretrained(
        str(check_dir(root) / "proxy"), device=device, name="proxy reward", flag="assets"
    )
    return proxy, FunctionReward(task_of(root).score, name="gold verifier")


def load_prm(root: Path, *, device: str = "cpu") -> ProcessRewardModel | None:
    """The process reward model under `root/prm`, or None when none was trained."""
    path = Path(root) / "prm"
    if not path.is_dir():
        return None
    return ProcessRewardModel.from_pretrained(
        str(path), step_delimiter=task_of(root).step_delimiter, device=device, flag="assets"
    )


def step_delimiter_ids(generator: Generator, task: countdown.CountdownTask) -> set[int]:
    """The token id that ends a step, or a one-line error when the tokenizer has none."""
    ids = generator.tokenizer(task.step_delimiter, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == generator.tokenizer.unk_token_id:
        raise ConfigError(
            "step_delimiter",
            f"the generator's tokenizer has no single token for the step delimiter "
            f"{task.step_delimiter!r}; step-level search (beam, dvts, mcts) needs one",
        )
    return {ids[0]}


def load_countdown(
    root: Path = SHIPPED,
    *,
    value: str = "model",
    device: str = "cpu",
    temperature: float = 1.0,
) -> CountdownSuite:
    """Load the generator, proxy and value predictor through `from_pretrained` from `root`."""
    root = check_dir(root)
    gen = Generator.from_pretrained(
        str(root / "generator"), device=device, temperature=temperature, flag="assets"
    )
    proxy, gold = load_rewards(root, device=device)
    task = task_of(root)
    return CountdownSuite(
        gen,
        proxy,
        gold,
        load_value(value, root, gen),
        step_delimiter_ids(gen, task),
        task,
        load_prm(root, device=device),
        load_blend(root / "blend.json"),
    )
