"""Every bad input to `forethought lm ...` a user can cause: exit code 2, one line starting with
`error:` that says what to change, no traceback, and nothing loaded or written first."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from forethought.cli import main
from forethought.lm.artifacts.shipped import SHIPPED
from forethought.lm.selftrain import SelfTrainConfig


def _control_run(d: Path) -> None:
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"env": "Pendulum-v1", "episodes": 3}))


def _damaged_run(d: Path) -> None:
    d.mkdir()
    (d / "config.json").write_text('{"iterations": 3, "train_pro')


def _wrong_type_run(d: Path) -> None:
    d.mkdir()
    (d / "config.json").write_text(json.dumps({**asdict(SelfTrainConfig()), "iterations": "x"}))


# (argv with {gen}, {rm} and {tmp} filled in, a setup of {tmp}, what the one line must say)
CASES = {
    "empty prompt": (["generate", ""], None, "error: PROMPT: is empty"),
    "blank prompt": (["generate", "  "], None, "error: PROMPT: is empty"),
    "not a Countdown prompt for the shipped models": (
        ["generate", "hello world", "--method", "lookahead"],
        None,
        "error: PROMPT: 'hello world' is not a Countdown prompt",
    ),
    "generate on cuda without a GPU": (
        ["generate", "1,2>3:", "--device", "cuda", "--model", "{tmp}/none", "--reward", "{rm}"],
        None,
        "error: --device: 'cuda' was asked for, but this torch build sees no CUDA GPU; use cpu",
    ),
    "compare on cuda without a GPU": (
        ["compare", "--device", "cuda", "--prompts", "1"],
        None,
        "error: --device: 'cuda' was asked for",
    ),
    "generate on a tpu": (
        ["generate", "1,2>3:", "--device", "tpu"],
        None,
        "error: --device: 'tpu'",
    ),
    "compare on a tpu": (["compare", "--device", "tpu"], None, "error: --device: 'tpu'"),
    "missing model path": (
        ["generate", "1,2>3:", "--model", "{tmp}/none", "--reward", "{rm}"],
        None,
        "error: --model: cannot load the generator from {tmp}/none: no such directory",
    ),
    "model path without a model": (
        ["generate", "1,2>3:", "--model", "{tmp}", "--reward", "{rm}"],
        None,
        "error: --model: cannot load the generator from {tmp}: it holds no saved model",
    ),
    "missing reward path": (
        ["generate", "1,2>3:", "--model", "{gen}", "--reward", "{tmp}/none"],
        None,
        "error: --reward: cannot load the reward model from {tmp}/none: no such directory",
    ),
    "causal LM as reward": (
        ["generate", "1,2>3:", "--model", "{gen}", "--reward", "{gen}"],
        None,
        "error: --reward: {gen} holds no trained classification head (score.weight",
    ),
    "causal LM as value model": (
        ["generate", "1,2>3:", "--model", "{gen}", "--reward", "{rm}", "--value-model", "{gen}"],
        None,
        "error: --value-model: {gen} holds no trained classification head",
    ),
    "missing assets": (
        ["compare", "--assets", "{tmp}/none", "--prompts", "1"],
        None,
        "error: --assets: no Countdown models under {tmp}/none; run `forethought lm "
        "train-generator",
    ),
    "resume of a directory that is no run": (
        ["selftrain", "--resume", "{tmp}"],
        None,
        "error: --resume: {tmp} is not a run directory (no config.json in it)",
    ),
    "resume of a missing directory": (
        ["selftrain", "--resume", "{tmp}/none"],
        None,
        "error: --resume: {tmp}/none is not a directory",
    ),
    "resume of a control run": (
        ["selftrain", "--resume", "{tmp}/run"],
        _control_run,
        "error: {tmp}/run/config.json is not a self-training run's configuration (unknown "
        "fields: env, episodes); it looks like a control run",
    ),
    "resume with a damaged config.json": (
        ["selftrain", "--resume", "{tmp}/run"],
        _damaged_run,
        "error: {tmp}/run/config.json is not valid JSON",
    ),
    "resume with a wrongly typed config.json": (
        ["selftrain", "--resume", "{tmp}/run"],
        _wrong_type_run,
        "error: {tmp}/run/config.json is damaged",
    ),
    "resume changing a fixed option": (
        ["selftrain", "--resume", "{tmp}/run", "--lr", "0.1"],
        None,
        "error: --resume: a resumed run keeps its own config; drop --lr (only --iterations, "
        "--device may change)",
    ),
    "train-generator into the shipped models": (
        ["train-generator", "--out", str(SHIPPED)],
        None,
        "error: --out: {shipped} holds the models shipped with forethought; choose another "
        "--out, or pass --overwrite-shipped",
    ),
    "train-reward into the shipped generator's directory": (
        ["train-reward", "--out", str(SHIPPED / "proxy")],
        None,
        "error: --out: {shipped}/proxy holds the models shipped with forethought",
    ),
    "train-reward without a generator": (
        ["train-reward", "--out", "{tmp}"],
        None,
        "error: --out: no generator/ under {tmp}; run train-generator first",
    ),
    "train-reward with a negative ranking weight": (
        ["train-reward", "--out", "{tmp}", "--proxy-pairwise", "-1"],
        None,
        "error: --proxy-pairwise: must be 0 (off) or more, got -1.0",
    ),
    "train-reward with fewer proxy samples than one problem's": (
        ["train-reward", "--out", "{tmp}", "--proxy-samples", "3"],
        None,
        "error: --proxy-samples: must be at least 4 (one problem), got 3",
    ),
    "train-generator with no proxy steps": (
        ["train-generator", "--out", "{tmp}/new", "--proxy-steps", "0"],
        None,
        "error: --proxy-steps: must be at least 1, got 0",
    ),
    "train-prm without a generator": (
        ["train-prm", "--out", "{tmp}"],
        None,
        "error: --out: no generator/ under {tmp}; run train-generator first",
    ),
    "train-prm into the shipped models": (
        ["train-prm", "--out", str(SHIPPED)],
        None,
        "error: --out: {shipped} holds the models shipped with forethought",
    ),
    "train-prm with negative outcome samples": (
        ["train-prm", "--out", "{tmp}/models", "--outcomes", "-1"],
        lambda run: _assets_without_prm(run.parent / "models"),
        "error: --outcomes: must be 0 (none) or more, got -1",
    ),
    "train-prm with no samples for the pick check": (
        ["train-prm", "--out", "{tmp}/models", "--pick-samples", "0"],
        lambda run: _assets_without_prm(run.parent / "models"),
        "error: --pick-samples: must be at least 1, got 0",
    ),
    "compare with a PRM scorer but no PRM": (
        ["compare", "--assets", "{tmp}/models", "--process", "prm"],
        lambda run: _assets_without_prm(run.parent / "models"),
        "error: --process: needs a process reward model; train one with `forethought lm "
        "train-prm --out DIR`",
    ),
    "compare with the blend pick but no blend fitted": (
        ["compare", "--assets", "{tmp}/models", "--final", "blend"],
        lambda run: _assets_without_prm(run.parent / "models"),
        "error: --final: 'blend' needs fitted judge weights; run `forethought lm train-blend "
        "--out DIR` and pass --assets DIR",
    ),
    "compare with the blend pick but no PRM for it to read": (
        ["compare", "--assets", "{tmp}/models", "--final", "blend"],
        lambda run: _assets_without_prm(run.parent / "models", blend=True),
        "error: --final: needs a process reward model; train one with `forethought lm "
        "train-prm --out DIR`",
    ),
    "train-blend without a PRM": (
        ["train-blend", "--out", "{tmp}/models"],
        lambda run: _assets_without_prm(run.parent / "models"),
        "error: --out: no prm/ under {tmp}/models; run train-generator and train-prm first",
    ),
    "train-blend into the shipped models": (
        ["train-blend", "--out", str(SHIPPED)],
        None,
        "error: --out: {shipped} holds the models shipped with forethought",
    ),
    "train-blend with empty pools": (
        ["train-blend", "--out", "{tmp}", "--samples", "0"],
        None,
        "error: --samples: must be at least 1, got 0",
    ),
    "train-blend with a negative hidden layer": (
        ["train-blend", "--out", "{tmp}", "--hidden", "-1"],
        None,
        "error: --hidden: must be at least 0 (0: a linear blend), got -1",
    ),
    "selftrain with a negative thread count": (
        ["selftrain", "--out", "{tmp}/new", "--threads", "-1"],
        None,
        "error: --threads: must be 0 (torch default) or more",
    ),
}


def _assets_without_prm(root: Path, blend: bool = False) -> None:
    """The shipped Countdown models (linked) without a prm/ (with their blend.json if asked)."""
    root.mkdir(parents=True)
    for name in ("generator", "proxy", "value_model", "meta.json", *(["blend.json"] * blend)):
        (root / name).symlink_to(SHIPPED / name)


def _files(root: Path) -> list[Path]:
    """Everything under `root` but the run-directory lock file (taken before config is read)."""
    return sorted(p for p in root.rglob("*") if p.name != ".lock")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2(name, tiny_dirs, tmp_path, capsys):
    if "cuda" in name and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv, setup, expected = CASES[name]
    gen, rm = tiny_dirs
    if setup is not None:
        setup(tmp_path / "run")
    fill = {"gen": gen, "rm": rm, "tmp": str(tmp_path), "shipped": str(SHIPPED)}
    before = _files(tmp_path)
    code = main(["lm", *(a.format(**fill) for a in argv)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code == 2, output
    assert output.startswith(expected.format(**fill)), output
    assert output.count("\n") == 1 and "Traceback" not in output
    assert _files(tmp_path) == before  # nothing written


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    tiny = SelfTrainConfig(iterations=0, train_prompts=2, eval_prompts=2, value_prompts=2)
    (run / "config.json").write_text(json.dumps(asdict(tiny)))  # quick, should the lock fail
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from forethought.storage import RunLock; "
            f"lock = RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["lm", "selftrain", "--resume", str(run)])
        out = capsys.readouterr().out
        assert code == 2
        assert out.startswith(f"error: {run} is in use by process {holder.pid}"), out
        assert out.count("\n") == 1 and "Traceback" not in out
        assert not (run / "iter_0.tmp").exists()  # refused before anything was written
    finally:
        holder.kill()
        holder.wait()
