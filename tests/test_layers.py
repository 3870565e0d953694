"""The package's import graph: no cycles, arrows only downwards, receiver_kit independent.

Imports inside functions count (they are arrows all the same); imports under
``if TYPE_CHECKING:`` do not (they never run). A function-level import of a sibling
module needs a comment saying why it cannot be at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The layers of ``flask_trakkr_webhooks`` (README, Architecture): a module may import only
#: modules of its own layer or below.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "errors",
            "ids",
            "rules",
            "auth",
            "events",
            "templating",
            "message",
            "signing",
            "retry",
            "pacing",
            "duration",
            "_version",
            "providers",
        ),
        0,
    ),
    # crypto is here because models' encrypted columns need its column type.
    **dict.fromkeys(("config", "state", "models", "crypto", "metrics", "tracing", "progress", "migrations"), 1),
    **dict.fromkeys(
        (
            "outbox",
            "dispatch",
            "engine",
            "claim",
            "attempt",
            "record",
            "health",
            "replay",
            "rows",
            "ratelimit",
            "ssrf",
            "schemas",
            "openapi",
            "testing",
            "observe",
            "status",
            "migrate",
            "retention",
        ),
        2,
    ),
    **dict.fromkeys(("api", "cli", "jobs", "worker", "delivery", "portal"), 3),
    "extension": 4,
    "__init__": 5,
}


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    out = {}
    for path in base.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, ast.stmt, bool]]:
    """``(imported module, node, inside a function)`` for every import that runs (``known``: the
    package's module names, to tell ``from . import module`` from ``from . import name``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, ast.stmt, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk(other, in_function)
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child, in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    # `from . import x` imports module x when x is a module, else the package.
                    submodule = f"{target}.{alias.name}"
                    yield (submodule if submodule in known else target), child, in_function
            yield from walk(child, inner)

    yield from walk(tree, False)


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, set(modules)):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", ["flask_trakkr_webhooks", "receiver_kit"])
def test_no_import_cycle(package: str) -> None:
    assert _cycles(_graph(package)) == []


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _layer(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[name]


def test_imports_only_go_down_the_layers() -> None:
    graph = _graph("flask_trakkr_webhooks")
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(source)
    )
    assert upward == []


def test_every_module_has_a_layer() -> None:
    top = {name.split(".")[1] if "." in name else "__init__" for name in _modules("flask_trakkr_webhooks")}
    assert sorted(top - set(LAYERS)) == []


def test_receiver_kit_never_imports_the_sender() -> None:
    modules = _modules("receiver_kit")
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, set(modules)):
            assert not target.startswith("flask_trakkr_webhooks"), f"{name} imports {target}"


def test_function_level_sibling_imports_say_why() -> None:
    offenders = []
    modules = _modules("flask_trakkr_webhooks")
    for name, path in modules.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, node, in_function in _imports(name, path, set(modules)):
            if in_function and target.startswith("flask_trakkr_webhooks"):
                before = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
                if "#" not in lines[node.lineno - 1] and not before.startswith("#"):
                    offenders.append(f"{name}:{node.lineno} imports {target}")
    assert offenders == []
