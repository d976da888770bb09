"""The package's import direction: data flows top to bottom, so a module imports only from
layers below its own (or from its own subpackage), and no two modules import each other, even
through a chain or a function-level import."""

import ast
from pathlib import Path

import forethought

ROOT = Path(forethought.__file__).parent

# Lowest first. A top-level part may import only parts in earlier rows (and itself).
LAYERS = [
    {"errors", "types"},
    {"runtime", "storage", "reporting"},
    {"data", "models"},
    {"planners", "rollout"},
    {"tasks"},
    {"config"},
    {"agents"},
    {"trainers"},
    {"tools", "lm"},
    {"sweep"},
    {"cli", "__main__"},
]
RANK = {part: i for i, row in enumerate(LAYERS) for part in row}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """forethought modules imported anywhere in `path` (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("forethought")
        ):
            for alias in node.names:  # `from forethought.x import y` may import submodule x.y
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("forethought"))
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def test_every_part_of_the_package_has_a_layer():
    parts = {part(m) for m in graph()} - {"__init__"}
    assert parts <= set(RANK), f"give these a row in LAYERS: {sorted(parts - set(RANK))}"


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if part(module) != "__init__"
        and part(target) != part(module)
        and RANK.get(part(target), -1) >= RANK.get(part(module), -1)
    ]
    assert not upward, "\n".join(upward)


def test_no_circular_imports():
    edges = graph()
    # A package's __init__ re-exporting its own submodules is not a cycle of ideas.
    edges = {
        m: {t for t in ts if not (t.startswith(m + ".") and m in edges and edges.get(m))}
        for m, ts in edges.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))
