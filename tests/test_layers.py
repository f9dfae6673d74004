"""The layout is the architecture: every import in blowup/ (at the top of a module or inside a function) points
down the layers, so there is no import circle, visible or hidden, and nothing generic reaches up into an equation.
Read from the source with ast, so an import that only runs on some path counts too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "blowup"
# lowest first; a module may import its own layer or any below it, never one above
LAYERS = [
    ("blowup.errors",),
    ("blowup.engine",),
    ("blowup.problem",),
    ("blowup.solvers",),
    ("blowup.equations",),
    ("blowup.config",),
    ("blowup.training",),
    ("blowup.analysis",),
    ("blowup.cli", "blowup.__init__"),
]
EQUATION_NAMES = ("burgers", "sir", "ccf", "decay")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer")


def imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every blowup module that `source` (the text of `module`) imports, wherever the import statement stands."""
    found = set()
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from blowup.training import logs`
    return {name for name in found if name in MODULES and name != module}


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in SOURCES}
GRAPH = {module_name(p): imports(p.read_text(), module_name(p), p.name == "__init__.py") for p in SOURCES}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    upward = [name for name in GRAPH[module] if layer(name) > layer(module)]
    assert not upward, f"{module} imports {upward} from a higher layer"


def test_no_import_circle():
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in GRAPH[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in GRAPH:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", [m for m in sorted(GRAPH) if layer(m) != layer("blowup.equations")])
def test_generic_modules_import_no_equation(module):
    """What differs per equation is asked of the Problem: no generic module imports an equation's module (the
    registry in blowup.equations is the one place that names them, by string)."""
    named = [name for name in GRAPH[module] if name.startswith("blowup.equations.")]
    assert not named, f"{module} imports {named}"


def test_the_checker_sees_an_upward_import_inside_a_function():
    """The oracle for the tests above: a planted import inside a function body is found and ranked above."""
    source = "def f():\n    from blowup.training import trainer\n    from . import lm\n"
    found = imports(source, "blowup.solvers.newton")
    assert found == {"blowup.training", "blowup.training.trainer", "blowup.solvers", "blowup.solvers.lm"}
    assert layer("blowup.training.trainer") > layer("blowup.solvers.newton")
