"""The layers of the code, as the folders name them: checked on the imports themselves (ast), not on trust.

common/ is layered, bottom to top: base -> data -> language, models -> method -> federation. A module may
import its own layer and the layers below it, never one above. client/ and server/ build on common/ (and
Flower) only: a device's code never depends on the simulation harness, and neither depends on the other.
No module imports, directly or through others, itself: every import counts, also one inside a function,
so a cycle cannot hide behind a late import.

Functions fit on a screen: no function or method in common/, client/ or server/ is longer than 80 lines,
counted from its def line to its last line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from common.base.paths import PROJECT_ROOT

PACKAGES = ("common", "client", "server", "simulations")
LENGTH_CHECKED_PACKAGES = ("common", "client", "server", "simulations", "scripts")
MAX_FUNCTION_LINES = 80

# Which top-level parts of the project each part may import (its own part is always allowed).
ALLOWED = {
    "common.base": set(),
    "common.data": {"common.base"},
    "common.language": {"common.base", "common.data"},
    "common.models": {"common.base", "common.data"},
    "common.method": {"common.base", "common.data", "common.language", "common.models"},
    "common.federation": {"common.base", "common.data", "common.language", "common.models", "common.method"},
    "client": {"common"},
    "server": {"common"},
    "simulations": {"common", "client", "server"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    paths = [path for package in PACKAGES for path in (PROJECT_ROOT / package).rglob("*.py")]
    return {module_name(path): path for path in paths}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (a `from package import module` counts as importing the module)."""
    found: set[str] = set()
    this = module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; the project imports by full name"
            base = node.module or ""
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules and name != this)
    return found


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def allows(importer_layer: str, imported: str) -> bool:
    if layer_of(imported) == importer_layer:
        return True
    return any(imported == part or imported.startswith(part + ".") for part in ALLOWED[importer_layer])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> ... -> a, or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return [*path[path.index(following) :], following]
            elif not state.get(following):
                state[following] = 1
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def long_functions(source: str, where: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Each function or method of `source` longer than `limit` lines (def line to last line, decorators not
    counted), as "where:line name (N lines)"; a method is named Class.method, a nested one outer.inner."""
    found: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append(f"{where}:{child.lineno} {prefix}{child.name} ({length} lines)")
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename=where), "")
    return found


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def test_every_module_belongs_to_a_layer(import_graph):
    assert "common.data.windows" in import_graph and "client.client_app" in import_graph
    homeless = sorted(name for name in import_graph if name != "common" and layer_of(name) is None)
    assert homeless == [], f"modules outside every layer of ALLOWED: {homeless} (common/ holds only layers)"


def test_no_import_from_a_higher_layer(import_graph):
    violations = [
        f"{importer} imports {imported}"
        for importer, imported_set in sorted(import_graph.items())
        if (layer := layer_of(importer)) is not None
        for imported in sorted(imported_set)
        if not allows(layer, imported)
    ]
    assert violations == [], "imports against the layering:\n" + "\n".join(violations)


def test_no_import_cycle(import_graph):
    cycle = find_cycle(import_graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_what_they_are_for():
    """The checker itself: a planted cycle and a planted upward import are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert not allows("common.data", "common.models.sensor_encoder")
    assert not allows("client", "simulations.cli")
    assert not allows("server", "client.client_app")
    assert allows("common.method", "common.data.windows")
    assert allows("common.language", "common.language.prompts")


def test_no_function_over_80_lines():
    paths = sorted(
        path for package in LENGTH_CHECKED_PACKAGES for path in (PROJECT_ROOT / package).rglob("*.py")
    )
    assert PROJECT_ROOT / "common" / "data" / "features.py" in paths
    too_long = [
        entry
        for path in paths
        for entry in long_functions(path.read_text(), str(path.relative_to(PROJECT_ROOT)))
    ]
    assert too_long == [], f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_the_length_check_counts_def_line_to_last_line():
    """The checker itself: 80 lines pass, 81 lines fail, methods and nested functions are found by name."""

    def function(name: str, body_lines: int, indent: str = "") -> str:
        return (
            f"{indent}def {name}():\n" + f"{indent}    x = 1\n" * (body_lines - 1) + f"{indent}    return x\n"
        )

    source = (
        "import functools\n"
        + function("fits", 79)  # lines 2-81: 80 lines
        + "class Holder:\n"  # line 82
        + "    @functools.cache\n"  # line 83: a decorator does not count
        + function("too_long", 80, "    ")  # lines 84-164: 81 lines
        + "def outer():\n"  # line 165
        + function("inner", 81, "    ")  # lines 166-247: 82 lines
        + "    return inner\n"  # line 248: outer is 84 lines
    )
    assert long_functions(source, "planted.py") == [
        "planted.py:84 Holder.too_long (81 lines)",
        "planted.py:165 outer (84 lines)",
        "planted.py:166 outer.inner (82 lines)",
    ]


def test_the_app_bundle_holds_what_the_apps_import_and_stays_far_under_flowers_limit():
    """`flwr run .` refuses a FAB over 10 MB. It once grew past that with docs/results' measured files: the
    bundle takes the layers the ServerApp and ClientApp import and configs/ (pyproject.toml `fab-include`)."""
    import io
    import zipfile

    from flwr.cli.build import build_fab_from_disk
    from flwr.common.constant import FAB_MAX_SIZE

    fab = build_fab_from_disk(PROJECT_ROOT)
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(io.BytesIO(fab)).namelist()}
    assert top_level == {"common", "server", "client", "configs", "pyproject.toml", "README.md", ".info"}
    assert len(fab) < FAB_MAX_SIZE / 4, f"FAB of {len(fab):,} bytes, Flower's limit {FAB_MAX_SIZE:,}"
