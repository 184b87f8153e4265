"""The layers hold on the real import graph, imports inside functions included.

Read from the source with `ast`, not by importing, so an import hidden in a function body counts as much as
one at the top of a module. The rules (docs/architecture.md):

- faceengine is plain Python: it imports no Django, DRF or Celery, and no project package but itself;
- audit imports no other project app; accounts imports only audit; neither knows cases or search;
- search (galleries, enrolment, index, execution) does not know cases; cases may use every app below it;
- the rfr package's kernel (settings, errors, engine handle, queues, schema, error handling) imports no app
  except faceengine; only its composition root (urls, views, wsgi, celery) sees the apps;
- no import cycles between modules, nor between apps;
- no project import inside a function body, except in an AppConfig.ready() (Django's hook for wiring an app
  once its models are loaded), so no cycle can be dodged by deferring an import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APPS = ("faceengine", "audit", "accounts", "search", "cases", "rfr")
PROJECT = (*APPS, "bench", "tests")
RFR_COMPOSITION_ROOT = {"rfr.urls", "rfr.views", "rfr.wsgi", "rfr.celery", "rfr"}
# What each app may import from the project (besides itself). rfr here is its kernel only.
ALLOWED: dict[str, set[str]] = {
    "faceengine": set(),
    "rfr-kernel": {"faceengine"},
    "audit": {"rfr-kernel"},
    "accounts": {"audit", "rfr-kernel"},
    "search": {"accounts", "audit", "faceengine", "rfr-kernel"},
    "cases": {"search", "accounts", "audit", "faceengine", "rfr-kernel"},
    "rfr-root": {"cases", "search", "accounts", "audit", "faceengine", "rfr-kernel"},
}
FRAMEWORKS = ("django", "rest_framework", "celery", "guardian", "drf_spectacular", "django_otp")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module
    target: str  # dotted module imported (the longest project module the name resolves to)
    line: int
    in_function: str | None  # name of the enclosing function, if any
    path: Path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    modules = {}
    for top in PROJECT:
        for path in (REPO / top).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            modules[_module_name(path)] = path
    return modules


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The longest project module `name` is, or lies in (`cases.models.Case` -> `cases.models`)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            names: list[str] = []
            line = getattr(child, "lineno", 0)
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in child.names] or [base]
            for name in names:
                if name.split(".")[0] in FRAMEWORKS and module.split(".")[0] == "faceengine":
                    found.append(Import(module, name, line, function, path))
                target = _resolve(name)
                if target is not None and target != module:
                    found.append(Import(module, target, line, function, path))
            visit(child, inner)

    visit(tree, None)
    return list(dict.fromkeys(found))  # one entry per imported module per line


IMPORTS = [imp for module, path in sorted(MODULES.items()) for imp in _imports_of(module, path)]


def _layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "rfr":
        return "rfr-root" if module in RFR_COMPOSITION_ROOT else "rfr-kernel"
    return top


def _where(imp: Import) -> str:
    return f"{imp.path.relative_to(REPO)}:{imp.line} imports {imp.target}"


def test_the_graph_was_read() -> None:
    # A guard against a rule passing because nothing was looked at.
    assert {"cases.probes", "search.execution", "faceengine.engine", "audit.services"} <= set(MODULES)
    assert any(i.importer == "cases.searches" and i.target == "search.execution" for i in IMPORTS)


def test_faceengine_imports_no_django_and_no_other_project_package() -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if i.importer.split(".")[0] == "faceengine"
        and (i.target.split(".")[0] in FRAMEWORKS or i.target.split(".")[0] not in ("faceengine",))
    ]
    assert not bad, "faceengine must stay plain Python:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_lies_below_it(layer: str) -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if _layer(i.importer) == layer
        and _layer(i.target) != layer
        and i.target.split(".")[0] in APPS
        and _layer(i.target) not in ALLOWED[layer]
    ]
    assert not bad, f"{layer} may import only {sorted(ALLOWED[layer])}:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles_between_modules() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        if i.importer.split(".")[0] in APPS and i.target.split(".")[0] in APPS:
            edges[i.importer].add(i.target)
    assert not _cycles(edges), f"import cycles: {_cycles(edges)}"


def test_no_import_cycles_between_apps() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        if i.importer.split(".")[0] in APPS and i.target.split(".")[0] in APPS:
            source, target = _layer(i.importer), _layer(i.target)
            if source != target:
                edges[source].add(target)
    assert not _cycles(edges), f"app-level cycles: {_cycles(edges)}"


def test_no_project_import_hides_in_a_function_body() -> None:
    bad = [
        f"{_where(i)} inside {i.in_function}()"
        for i in IMPORTS
        if i.in_function is not None
        and i.importer.split(".")[0] in APPS
        and not (i.in_function == "ready" and i.path.name == "apps.py")
        and "migrations" not in i.path.parts
    ]
    assert not bad, "import at the top of the module (or invert the dependency):\n" + "\n".join(bad)


def _imports_audit_writer(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "audit.services"
        and any(alias.name == "audit_event_record" for alias in node.names)
        for node in ast.walk(tree)
    )


def test_audit_rows_are_written_only_by_services() -> None:
    # Views, API views, template tags, the admin, signal receivers and commands call a service, which writes
    # the change and its audit row in one transaction; none of them writes audit rows itself.
    presentation = ("views", "api", "urls", "admin", "signals", "forms", "templatetags", "management", "presenters")
    writers = {m for m, path in MODULES.items() if m.split(".")[0] in APPS and _imports_audit_writer(path)}
    bad = sorted(m for m in writers if any(part in presentation for part in m.split(".")[1:]))
    assert not bad, f"write audit events through a service, not from: {bad}"
    assert {"cases.probes", "search.galleries", "accounts.services"} <= writers  # the rule saw the writers
