"""`forethought lm ...`: help, a working generate, and one-line errors with exit code 2."""

from __future__ import annotations

import pytest

from forethought.cli import main as top_main


def main(argv: list[str]) -> int:
    return top_main(["lm", *argv])


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for sub in ("compare", "generate", "train-generator", "train-reward"):
        assert sub in out


def test_generate_with_any_hf_model_path(tiny_dirs, capsys):
    gen_dir, rm_dir = tiny_dirs
    argv = ["generate", "1,2>3:", "--model", gen_dir, "--reward", rm_dir, "--budget", "60",
            "--max-new-tokens", "10", "--method", "prune"]  # fmt: skip
    assert top_main(["lm", *argv]) == 0
    out = capsys.readouterr().out
    assert "response:" in out and "/60 tokens" in out


@pytest.mark.parametrize("method", ["lookahead", "prune"])
def test_any_hf_classifier_serves_as_value_model(tiny_dirs, capsys, method):
    gen_dir, rm_dir = tiny_dirs
    argv = ["generate", "1,2>3:", "--model", gen_dir, "--reward", rm_dir, "--value-model",
            rm_dir, "--budget", "80", "--max-new-tokens", "10", "--method", method]  # fmt: skip
    assert top_main(["lm", *argv]) == 0
    out = capsys.readouterr().out
    assert "response:" in out
    calls = int(out.split(" value calls")[0].rsplit(", ", 1)[1])
    assert calls > 0  # the partials were ranked by the value model, not the reward model


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--budget", "5"], "--budget: a budget of 5 tokens"),
        (["--max-new-tokens", "70"], "lower max_new_tokens"),
        (["--max-new-tokens", "60"], "shorten the prompt"),
        (["--method", "lookahead"], "--value-model"),
        (["--method", "beam"], "step delimiter"),
    ],
)
def test_user_errors_are_one_line_exit_2(tiny_dirs, capsys, extra, message):
    gen_dir, rm_dir = tiny_dirs
    argv = ["generate", "1,2>3:", "--model", gen_dir, "--reward", rm_dir, "--max-new-tokens", "10"]
    assert main(argv + extra) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and message in out
    assert "Traceback" not in out and out.count("\n") == 1


def test_missing_assets_says_how_to_get_them(tmp_path, capsys):
    assert main(["compare", "--assets", str(tmp_path), "--prompts", "1"]) == 2
    assert "train-generator" in capsys.readouterr().out
