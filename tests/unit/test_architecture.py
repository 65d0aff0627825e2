"""The package's shape: no import circle, and the rooms never reach back to the runner.

A stage module (reading, the store, screening, publishing, reports) is handed facts
(pipeline/facts.py) and a connection; it never imports the runner, the CLI or the flows, so
each can be read, tested and reused on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
ROOMS = ("read", "store", "screening", "publish", "reports")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline":
                found |= {f"pipeline.{a.name}" for a in node.names}
            elif node.module.startswith(("pipeline.", "flows")):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(("pipeline.", "flows"))}
    return found


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, top_level_only=top_level_only):
            # "pipeline.reports" importing a submodule by name: keep the deepest known module
            targets.add(imported if imported in modules else imported.rsplit(".", 1)[0])
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_among_pipeline_modules() -> None:
    cycle = _cycle(_graph(top_level_only=True))
    assert cycle is None, " -> ".join(cycle)


def test_the_rooms_never_import_the_runner_the_cli_or_the_flows() -> None:
    for name, targets in _graph(top_level_only=False).items():
        if name.split(".")[1:2] and name.split(".")[1] in ROOMS:
            bad = {
                t
                for t in targets
                if t in ("pipeline.runner", "pipeline.cli") or t.startswith("flows")
            }
            assert not bad, f"{name} imports {sorted(bad)}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_registry_tables_are_defined_once_in_sql_registry() -> None:
    """Every lasting table besides the kept extract tables is in sql/registry/tables.sql."""
    from pipeline.registry import registry_ddl

    tables = registry_ddl()
    assert set(tables) >= {"runs", "flags_history", "worklist_history", "quarantine_log"}
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.parent.joinpath("flows").rglob("*.py")]:
        if "bench" in path.parts or "demo" in path.parts or path.name == "registry.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "CREATE TABLE IF NOT EXISTS" not in text, path
