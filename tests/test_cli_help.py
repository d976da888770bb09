"""The command line as a newcomer meets it: every command's --help, the version, no arguments."""

import ast
from pathlib import Path

import pytest

import forethought
from forethought.cli import main

COMMANDS = ["train", "demo", "diagnose", "evaluate", "explain", "report", "sweep", "offline", "ope"]
DATASET_COMMANDS = ["collect", "make-tiers"]
LM_COMMANDS = ["compare", "generate", "explain", "train-generator", "train-reward", "selftrain"]


@pytest.mark.parametrize(
    "command",
    [[c] for c in COMMANDS]
    + [["lm", c] for c in LM_COMMANDS]
    + [["dataset", c] for c in DATASET_COMMANDS],
    ids=" ".join,
)
def test_every_command_explains_itself_with_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "(default" in out


def test_no_arguments_lists_every_command_lm_included(capsys):
    with pytest.raises(SystemExit):
        main([])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for command in (*COMMANDS, "lm", "dataset"):
        assert command in text


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"forethought {forethought.__version__}"


def test_option_help_is_one_paragraph_per_field():
    """Field docstrings become --help text, and tyro keeps their line breaks: a hard-wrapped
    docstring would break help lines mid-sentence."""
    wrapped = []
    for path in Path(forethought.__file__).parent.rglob("*.py"):
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for prev, node in zip(cls.body, cls.body[1:], strict=False):
                if (
                    isinstance(prev, ast.AnnAssign)
                    and isinstance(node, ast.Expr)
                    and isinstance(node.value, ast.Constant)
                    and "\n" in str(node.value.value)
                ):
                    wrapped.append(f"{path.name}:{node.lineno}")
    assert not wrapped, wrapped
