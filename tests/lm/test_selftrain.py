"""Self-training loop on a tiny config: artifacts reload, the fine-tune learns its data, a run
killed with SIGKILL mid-iteration resumes without redoing finished iterations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.cli import main as top_main
from forethought.errors import ConfigError
from forethought.lm.artifacts.finetune import load_policy
from forethought.lm.artifacts.shipped import SHIPPED
from forethought.lm.selftrain import RunDir, SelfTrainConfig, SelfTrainer, select
from forethought.lm.tasks import countdown
from forethought.lm.value import HiddenStateValue

# A few prompts, short budgets and top-1 filtering (so every prompt gives an example).
TINY = {
    "iterations": 2,
    "train_prompts": 12,
    "eval_prompts": 6,
    "value_prompts": 6,
    "samples": 4,
    "collect_budget": 96,
    "eval_budget": 48,
    "filter": "topk",
    "top_k": 1,
    "epochs": 2.0,
    "batch_size": 8,
    "lr": 3e-3,
}
TINY_ARGS = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]
COMPARED = ("plain", "bon", "lookahead", "value_corr", "collect")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)  # as the CLI does, so the subprocess run below matches exactly
    out = tmp_path_factory.mktemp("selftrain") / "run"
    cfg = SelfTrainConfig(**TINY).validate()
    run = RunDir.create(out, cfg)
    try:
        SelfTrainer(cfg, run, log=lambda _: None).run_all()
    finally:
        run.close()  # the run directory's lock, so that later tests may open it
    return out


def main(argv: list[str]) -> int:
    return top_main(["lm", *argv])


def _completion_logprob(gen, rows) -> float:
    """Mean log-probability per token of each row's completion + EOS given its prompt."""
    total, count = 0.0, 0
    tok = gen.tokenizer
    for r in rows:
        prompt = tok(r["prompt"])["input_ids"]
        answer = tok(r["completion"])["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = gen.model(input_ids=ids).logits.log_softmax(-1)[0, :-1]  # T-1 x V
        picked = logp[len(prompt) - 1 :].gather(1, ids[0, len(prompt) :, None])
        total, count = total + float(picked.sum()), count + len(answer)
    return total / count


def test_loop_writes_every_artifact_and_they_reload(tiny_run):
    run = RunDir(tiny_run)
    assert run.finished() == 3
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert (tiny_run / "selftrain.png").stat().st_size > 0
    assert json.loads((tiny_run / "config.json").read_text())["train_prompts"] == 12
    assert not list(tiny_run.glob("*.tmp"))
    for r in rows:
        for m in ("plain", "bon", "lookahead"):
            lo, hi = r[m]["gold_ci"]
            assert 0.0 <= lo <= r[m]["gold"] <= hi <= 1.0
            assert r[m]["gap"] == pytest.approx(r[m]["proxy"] - r[m]["gold"])
        assert "after" in r["value_corr"]
    assert {"before", "after"} <= set(rows[1]["value_corr"])

    base = load_policy(str(SHIPPED / "generator"), None)
    for k in (1, 2):
        d = tiny_run / f"iter_{k}"
        data = [json.loads(line) for line in (d / "dataset.jsonl").read_text().splitlines()]
        kept = [r for r in data if r["kept"]]
        # Scores in the dataset are the verifier's; top-1 keeps one distinct response a prompt.
        assert all(r["gold"] == countdown.score(r["prompt"], r["completion"]) for r in data)
        assert len(kept) == rows[k]["collect"]["kept"] == 12
        assert len({r["prompt"] for r in kept}) == 12
        policy = load_policy(str(SHIPPED / "generator"), d / "adapter")
        # The adapter was trained on the kept responses: they are now more likely than before.
        assert _completion_logprob(policy, kept) > _completion_logprob(base, kept) + 0.01
        # The saved predictor reloads onto the reloaded policy and gives finite scores.
        value = HiddenStateValue(policy).load(d / "value.npz")
        cands = policy.start(kept[0]["prompt"], 2, 8)
        assert np.isfinite(value(cands)).all()
        per_prompt = json.loads((d / "eval.json").read_text())
        assert np.mean(per_prompt["plain"]["gold"]) == pytest.approx(rows[k]["plain"]["gold"])


def test_filter_threshold_topk_and_dedup():
    rows = [
        {"prompt": "a", "completion": "x", "gold": 1.0, "proxy": 0.2},
        {"prompt": "a", "completion": "x", "gold": 1.0, "proxy": 0.2},  # duplicate
        {"prompt": "a", "completion": "y", "gold": 0.5, "proxy": 0.9},
        {"prompt": "a", "completion": "", "gold": 0.9, "proxy": 0.9},  # empty: never kept
        {"prompt": "b", "completion": "z", "gold": 0.3, "proxy": 0.1},
    ]
    cfg = SelfTrainConfig()
    assert select(cfg, rows) == [True, False, False, False, False]
    assert select(SelfTrainConfig(filter="topk", top_k=1), rows) == [
        True, False, False, False, True,
    ]  # fmt: skip
    by_proxy = SelfTrainConfig(filter="topk", top_k=1, filter_reward="proxy")
    assert select(by_proxy, rows) == [False, False, True, False, True]


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "forethought.cli", "lm", "selftrain", "--quiet", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )


@pytest.mark.slow  # ~60 s; GRPO's kill-and-resume test keeps the lm run directories in the default tier
def test_sigkill_mid_iteration_resumes_where_it_stopped(tmp_path, tiny_run):
    out = tmp_path / "run"
    proc = _cli("--out", str(out), *TINY_ARGS)
    # Kill once iteration 1 is finished and iteration 2 has collected its data (mid-iteration).
    marker = out / "iter_2.tmp" / "dataset.jsonl"
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, f"run ended before the kill: {proc.stdout.read()}"
        assert time.time() < deadline, "iteration 2 never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "iter_2").exists(), "killed too late: iteration 2 already finished"
    assert RunDir(out).finished() == 2
    done = {p: p.stat().st_mtime_ns for p in (out / "iter_1").rglob("*") if p.is_file()}

    resumed = _cli("--resume", str(out))
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert "at iteration 2 (2 finished)" in log
    assert "iteration 1:" not in log and "iteration 2:" in log  # only iteration 2 was run
    assert {p: p.stat().st_mtime_ns for p in done} == done  # iteration 1 untouched
    assert not list(out.glob("*.tmp"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    # Every step reseeds from (seed, iteration): the resumed run equals an uninterrupted one.
    reference = RunDir(tiny_run).rows()
    for got, want in zip(rows, reference, strict=True):
        want = _leaves({k: want[k] for k in COMPARED if k in want})
        assert _leaves(got).keys() >= want.keys()
        for key, value in want.items():
            assert _leaves(got)[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def _leaves(tree, prefix: str = "") -> dict:
    """{'a/b/0': number} for every number in nested dicts and lists."""
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}/{key}").items()
        }
    if isinstance(tree, list):
        return {
            k: v for i, sub in enumerate(tree) for k, v in _leaves(sub, f"{prefix}/{i}").items()
        }
    return {prefix: tree}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--iterations", "-1"], "--iterations: must be >= 0"),
        (["--eval-budget", "30"], "raise it to at least 48"),
        (["--prefix-tokens", "24"], "below --max-new-tokens"),
        (["--threads", "-1"], "--threads: must be 0"),
    ],
)
def test_bad_selftrain_input_is_one_line(tmp_path, capsys, argv, message):
    code = main(["selftrain", "--out", str(tmp_path / "r"), *argv])
    out = capsys.readouterr().out
    assert code == 2 and out.startswith("error: ") and message in out, out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert not (tmp_path / "r").exists()  # nothing is created for a bad config


@pytest.mark.parametrize(
    "argv,message",
    [(["--filter", "best"], "best"), (["--train-prompts", "many"], "many")],
)
def test_unparsable_selftrain_option_is_refused_by_the_parser(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:  # tyro's own checks (types, choices) exit
        main(["selftrain", "--out", str(tmp_path / "r"), *argv])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and message in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "r").exists()


def test_existing_run_dir_and_resume_overrides_are_refused(tiny_run, capsys):
    assert main(["selftrain", "--out", str(tiny_run)]) == 2
    assert f"pass --resume {tiny_run}" in capsys.readouterr().out
    assert main(["selftrain", "--resume", str(tiny_run), "--lr", "0.1"]) == 2
    assert "drop --lr" in capsys.readouterr().out
    assert main(["selftrain", "--resume", str(tiny_run.parent / "nothing")]) == 2
    assert "is not a directory" in capsys.readouterr().out


def test_threshold_nobody_passes_says_what_to_change(tmp_path):
    cfg = SelfTrainConfig(**{**TINY, "iterations": 1, "filter": "threshold", "threshold": 2.0})
    run = RunDir.create(tmp_path / "r", cfg)
    with pytest.raises(ConfigError, match="lower --threshold"):
        SelfTrainer(cfg, run, log=lambda _: None).run_all()
    run.close()
    assert RunDir(tmp_path / "r").finished() == 1  # iteration 0 stays finished


def test_help_lists_every_option(capsys):  # with its default
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "selftrain" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["selftrain", "--help"])
    out = capsys.readouterr().out
    for flag in ("--iterations", "--resume", "--filter", "--collect-budget", "--device", "--init"):
        assert flag in out
    assert "(default: 256)" in out and "(default: threshold)" in out


def test_ledger_books_training_compute_and_the_policy_loads_for_search(tiny_run):
    """Each iteration's ledger adds its searches, gold labels, refit samples and optimizer
    steps to the last; the newest iteration's policy loads as a search generator."""
    from forethought.lm.policies import load_trained_policy

    rows = RunDir(tiny_run).rows()
    ledgers = [r["ledger"] for r in rows]
    assert ledgers[0]["tokens"] > 0 and ledgers[0]["optimizer_steps"] == 0  # iteration 0 refit
    assert ledgers[0]["reward_calls"] == TINY["value_prompts"] * TINY["samples"]
    for prev, cur, row in zip(ledgers[:-1], ledgers[1:], rows[1:], strict=True):
        assert cur["optimizer_steps"] - prev["optimizer_steps"] == row["finetune"]["steps"] > 0
        new_calls = cur["reward_calls"] - prev["reward_calls"]
        # every finalist the collecting search scored (proxy, inside its budget) + its gold label
        # + one gold label per refit sample
        refit = TINY["value_prompts"] * TINY["samples"]
        assert new_calls >= row["collect"]["responses"] * 2 + refit
        assert cur["tokens"] - prev["tokens"] <= TINY["train_prompts"] * TINY["collect_budget"] + (
            refit * 24
        )
    policy = load_trained_policy(tiny_run)
    assert policy.label == f"selftrain iteration {TINY['iterations']}"


def test_sweep_reads_a_selftrain_runs_curve_and_plans_its_trials(tiny_run, tmp_path):
    """The sweep's lm-selftrain kind: its score is held-out plain gold per iteration, read from
    the run's rows; a grid over a self-training option expands to validated configs."""
    from forethought.storage import read_metrics
    from forethought.sweep import plan
    from forethought.sweep.kinds import get_kind

    kind = get_kind("lm-selftrain")
    rows = read_metrics(tiny_run / "metrics.jsonl")
    assert kind.curve(rows) == {
        "x": [r["iteration"] for r in rows],
        "y": [r["plain"]["gold"] for r in rows],
    }
    grid = plan.groups_of({"top_k": ["1", "2"]}, [])
    trials = plan.expand(plan.Plan(" ".join(TINY_ARGS), [0, 3], grid, "lm-selftrain"), tmp_path)
    assert [(t["settings"]["top_k"], t["seed"]) for t in trials] == [(1, 0), (1, 3), (2, 0), (2, 3)]
    assert all(t["command"] == "lm-selftrain" and t["config"]["seed"] == t["seed"] for t in trials)
    with pytest.raises(ConfigError, match="unknown setting 'top_kk'"):
        plan.expand(plan.Plan("", [0], [{"top_kk": 1}], "lm-selftrain"), tmp_path)


@pytest.mark.slow  # ~40 s: one self-training trial through the sweep's process pool
def test_a_selftrain_sweep_trial_equals_the_run_made_alone(tiny_run, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--command", "lm-selftrain", "--seeds", "0", "--workers", "1",
            f"--base-args={' '.join(TINY_ARGS)}", "--out", str(out)]  # fmt: skip
    assert top_main(argv) == 0
    (record,) = json.loads((out / "results.json").read_text())["trials"]
    rows = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert record["evaluations"]["x"] == [r["iteration"] for r in rows]
    assert record["evaluations"]["y"] == pytest.approx([r["plain"]["gold"] for r in rows], abs=1e-9)
