"""No import cycles between the app's packages.

A unit is a top-level package or module of assistants_app (api, web, admin, services, runs, models,
lib, ...), except that tools/ counts as its parts (tools.hosted, tools.code_interpreter,
tools.file_search): they are independent subsystems. Imports inside functions count too; only
`if TYPE_CHECKING:` imports do not. Before this layout, api <-> services_api and
services_vector_stores <-> tools.file_search were cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "assistants_app"


def unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "assistants_app" or len(parts) < 2:
        return None
    if parts[1] == "tools" and len(parts) > 2:
        return f"tools.{parts[2]}"
    return parts[1]


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from package import submodule` depends on the submodule.
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def _is_module(target: str) -> bool:
    path = APP.joinpath(*target.split(".")[1:])
    return path.is_dir() or path.with_suffix(".py").exists()


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = unit(_module_of(path))
        if source is None:
            continue
        for target in _imports(path):
            dest = unit(target)
            if dest is not None and dest != source and _is_module(target):
                graph.setdefault(source, set()).add(dest)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_cycles_between_packages() -> None:
    assert cycles(unit_graph()) == []


def test_the_layers_point_one_way() -> None:
    graph = unit_graph()
    # Nothing below the entry points imports them.
    for entry in ("api", "web", "admin", "management"):
        assert not [u for u, deps in graph.items() if entry in deps and u != "apps"], entry
    # The engine and the tools never reach up into the use cases that start runs.
    assert "services" not in graph.get("runs", set())
    assert "services" not in graph.get("tools.file_search", set())


def test_the_check_sees_a_cycle() -> None:
    # Positive control: the shapes the old layout had.
    assert cycles({"api": {"services_api"}, "services_api": {"api"}}) == [["api", "services_api", "api"]]
    assert unit("assistants_app.tools.file_search.search") == "tools.file_search"
    assert unit("assistants_app.services.runs") == "services"
