"""GRPO (TRL's GRPOTrainer) on tiny random models loaded from disk: a run writes every artifact,
its compute ledger equals what TRL generated, a SIGKILLed run resumes to the same numbers as an
uninterrupted one, and bad input is a one-line error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from forethought.cli import main as top_main
from forethought.lm.grpo import GRPOConfig, GRPORunDir, GRPORunner

TINY = {
    "steps": 4,
    "prompts_per_step": 2,
    "generations": 4,
    "eval_every": 2,
    "train_prompts": 16,
    "eval_prompts": 3,
    "value_prompts": 3,
    "samples": 2,
    "eval_budget": 48,
    "lr": 1e-3,
    "reward": "proxy",  # a random generator's answers all score 0 on the verifier: no signal
}
TINY_ARGS = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def tiny_assets(tiny_dirs, tmp_path_factory) -> Path:
    """An assets directory of tiny random models: a generator and a proxy reward classifier."""
    gen_dir, rm_dir = tiny_dirs
    root = tmp_path_factory.mktemp("assets")
    shutil.copytree(gen_dir, root / "generator")
    shutil.copytree(rm_dir, root / "proxy")
    return root


@pytest.fixture(scope="module")
def tiny_run(tiny_assets, tmp_path_factory) -> Path:
    torch.set_num_threads(1)  # as the CLI does, so the subprocess runs below match exactly
    out = tmp_path_factory.mktemp("grpo") / "run"
    cfg = GRPOConfig(**TINY, assets=str(tiny_assets)).validate()
    run = GRPORunDir.create(out, cfg)
    try:
        GRPORunner(cfg, run, log=lambda _: None).run_all()
    finally:
        run.close()
    return out


def main(argv: list[str]) -> int:
    return top_main(["lm", *argv])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_writes_checkpoints_evaluations_and_plot(tiny_run):
    rows = _rows(tiny_run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 2, 4]
    for r in rows:
        for method in ("plain", "bon", "lookahead"):
            assert 0.0 <= r[method]["gold"] <= 1.0 and 0.0 <= r[method]["pass1"] <= 1.0
            assert r[method]["gap"] == pytest.approx(r[method]["proxy"] - r[method]["gold"])
        assert r["bon"]["tokens"] <= TINY["eval_budget"]
    assert rows[0]["ledger"] == {"tokens": 0, "reward_calls": 0, "value_calls": 0,
                                 "optimizer_steps": 0}  # fmt: skip
    for step in (2, 4):
        ckpt = tiny_run / "checkpoints" / f"checkpoint-{step}"
        assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.pt").exists()
        assert (tiny_run / "evals" / f"step_{step}" / "value.npz").exists()
    assert (tiny_run / "grpo.png").stat().st_size > 0
    # The weights moved between checkpoints: GRPO trained the policy.
    from safetensors.torch import load_file

    a = load_file(str(tiny_run / "checkpoints" / "checkpoint-2" / "model.safetensors"))
    b = load_file(str(tiny_run / "checkpoints" / "checkpoint-4" / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ledger_counts_what_trl_generated(tiny_run):
    """Booked tokens equal TRL's own completion lengths (from its completion mask, a separate
    code path), one reward call per completion, one optimizer step per step."""
    log = _rows(tiny_run / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all("proxy" in r and "gold" in r for r in log)  # the verifier watches a proxy run
    per_step = TINY["prompts_per_step"] * TINY["generations"]
    previous = 0
    for r in log:
        assert r["tokens"] - previous == pytest.approx(r["mean_length"] * per_step, abs=1e-3)
        assert r["reward_calls"] == r["step"] * per_step and r["optimizer_steps"] == r["step"]
        previous = r["tokens"]
    last = _rows(tiny_run / "metrics.jsonl")[-1]["ledger"]
    assert last["tokens"] == log[-1]["tokens"] and last["optimizer_steps"] == TINY["steps"]
    assert last["value_calls"] == 0


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "forethought.cli", "lm", "grpo", "--quiet", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )


def test_sigkill_resumes_to_the_same_numbers(tmp_path, tiny_run, tiny_assets):
    out = tmp_path / "run"
    proc = _cli("--out", str(out), "--assets", str(tiny_assets), *TINY_ARGS)
    marker = out / "evals" / "step_2"  # kill once step 2 is checkpointed and evaluated
    deadline = time.time() + 180
    while not marker.exists():
        assert proc.poll() is None, f"run ended before the kill: {proc.stdout.read()}"
        assert time.time() < deadline, "step 2 never finished"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "evals" / "step_4").exists(), "killed too late"

    resumed = _cli("--resume", str(out))
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert "resuming" in log and "at step 2" in log
    assert "step 0:" not in log and "step 4:" in log  # finished checkpoints are not redone
    got, want = _rows(out / "metrics.jsonl"), _rows(tiny_run / "metrics.jsonl")
    assert [r["step"] for r in got] == [0, 2, 4]
    for g, w in zip(got, want, strict=True):
        assert g["ledger"] == w["ledger"]
        for method in ("plain", "bon", "lookahead"):
            assert g[method]["gold"] == pytest.approx(w[method]["gold"], rel=1e-6, abs=1e-9)
    assert _rows(out / "train_log.jsonl") == _rows(tiny_run / "train_log.jsonl")
    from safetensors.torch import load_file

    a = load_file(str(out / "checkpoints" / "checkpoint-4" / "model.safetensors"))
    b = load_file(str(tiny_run / "checkpoints" / "checkpoint-4" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_tuning_saves_an_adapter(tiny_assets, tmp_path):
    cfg = GRPOConfig(
        **{**TINY, "steps": 2, "eval_every": 2}, tuning="lora", assets=str(tiny_assets)
    )
    run = GRPORunDir.create(tmp_path / "r", cfg.validate())
    try:
        rows = GRPORunner(cfg, run, log=lambda _: None).run_all()
    finally:
        run.close()
    assert [r["step"] for r in rows] == [0, 2]
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-2" / "adapter_config.json").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--generations", "0"], "--generations: must be at least 2"),
        (["--generations", "1"], "against the others sampled for the same prompt"),
        (["--eval-budget", "30"], "30 tokens is under two answers"),
        (["--steps", "0"], "--steps: must be at least 1"),
        (["--reward", "nowhere/at/all"], "none of gold, solved, proxy and not a directory"),
    ],
)
def test_bad_grpo_input_is_one_line(tmp_path, capsys, argv, message):
    code = main(["grpo", "--out", str(tmp_path / "r"), *argv])
    out = capsys.readouterr().out
    assert code == 2 and out.startswith("error: ") and message in out, out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert not (tmp_path / "r").exists()


def test_reward_path_that_is_not_a_classifier_is_refused(tmp_path, capsys, tiny_assets):
    code = main(["grpo", "--out", str(tmp_path / "r"), "--assets", str(tiny_assets),
                 "--reward", str(tiny_assets / "generator")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 2 and "no trained classification head" in out, out
    assert out.count("\n") == 1 and not (tmp_path / "r").exists()


def test_resume_refuses_fixed_options_and_help_lists_defaults(tiny_run, capsys):
    assert main(["grpo", "--out", str(tiny_run)]) == 2
    assert f"pass --resume {tiny_run}" in capsys.readouterr().out
    assert main(["grpo", "--resume", str(tiny_run), "--lr", "0.1"]) == 2
    assert "drop --lr" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["grpo", "--help"])
    out = capsys.readouterr().out
    for flag in ("--generations", "--reward", "--tuning", "--eval-every", "--resume", "--device"):
        assert flag in out
    assert "(default: gold)" in out and "(default: full)" in out


def test_trained_policy_drives_every_search(tiny_run, capsys):
    """The hybrid: a GRPO run's policy (and the predictor refitted to it) as the generator of
    look-ahead, pruning and beam, under the same exactly counted budget."""
    from forethought.lm.policies import load_trained_policy

    policy = load_trained_policy(tiny_run)
    assert policy.label == "grpo step 4"
    base = load_trained_policy(tiny_run, 0)
    p, q = policy.generator.model.state_dict(), base.generator.model.state_dict()
    assert any(not torch.equal(p[k], q[k]) for k in p)  # step 4 is not the base
    for method in ("lookahead", "beam"):
        code = main(["generate", "3,7,2>27:", "--policy", str(tiny_run), "--method", method,
                     "--budget", "96"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        spent = int(out.split("spent:")[1].split("/")[0])
        assert 0 < spent <= 96


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--policy-step", "3"], "no finished checkpoint 3; finished: 0, 2, 4"),
        (["--value", "hidden"], "drop --value"),
        (["--model", "x", "--reward", "y"], "not both"),
    ],
)
def test_bad_policy_input_is_one_line(tiny_run, capsys, argv, message):
    code = main(["generate", "3,7,2>27:", "--policy", str(tiny_run), *argv])
    out = capsys.readouterr().out
    assert code == 2 and message in out and out.count("\n") == 1, out
    assert main(["generate", "3,7,2>27:", "--policy", str(tiny_run.parent)]) == 2
    assert "no config.json" in capsys.readouterr().out


@pytest.mark.slow  # ~26 s: two GRPO trials in a spawned pool (the sweep's lm kind; its planning is in the default tier)
def test_sweep_of_grpo_runs_equals_the_run_made_alone(tiny_run, tiny_assets, tmp_path):
    """`forethought sweep --command lm-grpo`: two learning rates in a pool of 2; the trial with
    the tiny run's settings ends with the tiny run's numbers, every trial is a GRPO run directory
    and results.json aggregates held-out gold."""
    out = tmp_path / "sweep"
    base = " ".join([*TINY_ARGS, "--assets", str(tiny_assets)]).replace("--lr 0.001", "")
    argv = ["sweep", "--command", "lm-grpo", "--grid", "lr=0.001,0.003", "--seeds", "0",
            f"--base-args={base}", "--out", str(out), "--workers", "2"]  # fmt: skip
    assert top_main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    trials = {t["settings"]["lr"]: t for t in results["trials"]}
    assert set(trials) == {0.001, 0.003} and not results["unfinished"]
    want = _rows(tiny_run / "metrics.jsonl")
    same = trials[0.001]
    assert same["command"] == "lm-grpo" and same["score_name"] == "plain_gold"
    assert same["evaluations"]["x"] == [0, 2, 4]
    assert same["evaluations"]["y"] == pytest.approx([r["plain"]["gold"] for r in want], abs=1e-9)
    for trial in trials.values():
        assert (Path(trial["run_dir"]) / "checkpoints" / "checkpoint-4").is_dir()
    assert set(results["groups"]) == {"lr=0.001", "lr=0.003"}
    assert (out / "results.png").stat().st_size > 0


def test_sweep_refuses_a_grpo_setting_it_decides(tmp_path, capsys):
    argv = ["sweep", "--command", "lm-grpo", "--grid", "seed=1,2", "--out", str(tmp_path / "s")]
    assert top_main(argv) == 2
    assert "'seed' cannot be set (seeds come from --seeds)" in capsys.readouterr().out
    assert not (tmp_path / "s").exists()
