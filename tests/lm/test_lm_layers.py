"""Inside `forethought.lm` imports flow downward too: a module imports only from rows above its
own (lower layers) or from its own subpackage; the commands (cli) sit on top of everything."""

import ast
from pathlib import Path

import forethought.lm

ROOT = Path(forethought.lm.__file__).parent

# Lowest first; a part may import only parts in earlier rows (and its own modules).
LAYERS = [
    {"budget", "hub", "tasks"},
    {"generator"},
    {"rewards"},
    {"value", "prm", "search", "blend"},
    {"artifacts"},
    {"compare", "selftrain"},
    {"grpo"},
    {"policies"},
    {"explain"},
    {"cli_training"},
    {"cli"},
]
RANK = {part: i for i, row in enumerate(LAYERS) for part in row}


def _part(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forethought.lm."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.module == "forethought.lm":
            found.update(a.name for a in node.names if a.name in RANK)
    return found


def test_lm_modules_import_only_lower_layers():
    files = [p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT]
    assert {_part(p) for p in files} <= set(RANK), "give every part of lm a row in LAYERS"
    upward = [
        f"{p.relative_to(ROOT)} imports {target}"
        for p in files
        for target in _imported_parts(p)
        if target != _part(p) and RANK[target] >= RANK[_part(p)]
    ]
    assert not upward, "\n".join(upward)
