"""The documentation names what exists, so a newcomer who follows it finds the code it describes.

- every file or folder path written in backticks in docs/architecture.md exists, and every other page's paths
  into a project folder exist;
- the data-path table of docs/architecture.md has a row for each step, naming modules that exist and hold the
  functions and classes it names beside them;
- every dotted name of a project module (`cases.access.case_get_for_user`) in the docs resolves;
- every audit action is in the table of docs/audit-and-permissions.md, and nothing else is;
- every task queue is consumed by a worker in the README, docker-compose.yml and `make worker`.

Read from the text and the source (`ast`); no database, no face engine.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from django.apps import apps

from audit.actions import AUDIT_ACTION_DESCRIPTIONS, AuditAction
from rfr.queues import TASK_QUEUES, Queue, TaskName

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "architecture.md"
AUDIT_DOC = REPO / "docs" / "audit-and-permissions.md"
README = REPO / "README.md"
DOCS = [*sorted((REPO / "docs").glob("*.md")), README]

PROJECT_FOLDERS = (
    "accounts",
    "audit",
    "bench",
    "cases",
    "deploy",
    "docs",
    "faceengine",
    "rfr",
    "scripts",
    "search",
    "static",
    "templates",
    "tests",
)
PACKAGES = ("accounts", "audit", "bench", "cases", "faceengine", "rfr", "search", "tests")
DATA_PATH_STEPS = [
    "upload",
    "decode",
    "detect",
    "align",
    "embed",
    "quality",
    "faces stored",
    "search request",
    "index",
    "search execution",
    "candidates",
    "decision",
    "report",
    "audit",
]
# Dotted names in the docs that are not Python (besides task names, audit actions and permissions): a
# PostgreSQL setting.
NOT_PYTHON = {"rfr.audit_allow_truncate"}

BACKTICKED = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"\w[\w.-]*(?:/[\w.-]+)*(?:\.(?:py|md|yml|yaml|toml|html|js|conf|sh|txt)|/)")
DOTTED = re.compile(rf"((?:{'|'.join(PACKAGES)})(?:\.\w+)+)(?=$|[(\s])")
# `cases/probes.py` (`probe_upload`, `probe_process`): a module and what it holds.
MODULE_WITH_NAMES = re.compile(r"`(?P<path>[\w/.-]+\.py)` \((?P<names>`[^`]+`(?:, `[^`]+`)*)\)")


def _spans(path: Path) -> list[str]:
    return BACKTICKED.findall(path.read_text(encoding="utf-8"))


def _paths(path: Path) -> list[str]:
    return [span for span in _spans(path) if PATH.fullmatch(span)]


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _table_rows(text: str) -> list[list[str]]:
    """The cells of the first Markdown table in `text`, header and rule excluded."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


@cache
def _definitions(module_file: Path) -> dict[str, set[str]]:
    """Top-level names a module defines or imports, each with the names defined in its body (for classes)."""
    tree = ast.parse(module_file.read_text(encoding="utf-8"), filename=str(module_file))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    members.add(item.name)
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    members |= {t.id for t in targets if isinstance(t, ast.Name)}
            names[node.name] = members
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update({t.id: set() for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update({(alias.asname or alias.name).split(".")[0]: set() for alias in node.names})
    return names


def _holds(module_file: Path, name: str) -> bool:
    """Whether the module defines `name` (`func`, `Class`, `Class.method`; a trailing `()` is ignored)."""
    first, _, member = name.removesuffix("()").partition(".")
    defined = _definitions(module_file)
    return first in defined and (not member or member.split(".")[0] in defined[first])


def _module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _resolves(dotted: str) -> bool:
    """A project module, or a name defined in one (`cases.access.case_get_for_user`, `faceengine.FaceEngine`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_file = _module_file(parts[:cut])
        if module_file is not None:
            rest = parts[cut:]
            return not rest or _holds(module_file, ".".join(rest[:2]))
    return False


def _permission_codes() -> set[str]:
    codes = set()
    for model in apps.get_models():
        meta = model._meta
        codes |= {f"{meta.app_label}.{action}_{meta.model_name}" for action in meta.default_permissions}
        codes |= {f"{meta.app_label}.{codename}" for codename, _ in meta.permissions}
    return codes


# --- docs/architecture.md -----------------------------------------------------------------------------------


def test_every_path_in_the_architecture_page_exists() -> None:
    paths = _paths(ARCHITECTURE)
    assert len(paths) > 40, "the architecture page should name the modules of the data path"
    missing = sorted({p for p in paths if not (REPO / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_data_path_table_names_a_module_for_every_step() -> None:
    rows = _table_rows(_section(ARCHITECTURE, "## The data path"))
    assert [row[0] for row in rows] == DATA_PATH_STEPS
    for step, *_, where in rows:
        modules = [span for span in BACKTICKED.findall(where) if PATH.fullmatch(span)]
        assert modules, f"the data-path step {step!r} names no module"
        assert all((REPO / module).exists() for module in modules), f"{step!r}: {modules}"


def test_names_beside_a_module_are_defined_in_it() -> None:
    found = 0
    for doc in (ARCHITECTURE, REPO / "docs" / "workbench.md"):
        for match in MODULE_WITH_NAMES.finditer(doc.read_text(encoding="utf-8")):
            module_file = REPO / match["path"]
            for name in BACKTICKED.findall(match["names"]):
                found += 1
                assert module_file.is_file() and _holds(module_file, name), (
                    f"{doc.name}: {match['path']} does not define {name}"
                )
    assert found > 20


# --- every page ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_paths_into_project_folders_exist(doc: Path) -> None:
    missing = sorted(
        {p for p in _paths(doc) if p.split("/")[0] in PROJECT_FOLDERS and not (REPO / p.rstrip("/")).exists()}
    )
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_dotted_project_names_resolve(doc: Path) -> None:
    not_code = NOT_PYTHON | {name.value for name in TaskName} | {a.value for a in AuditAction} | _permission_codes()
    stale = sorted(
        {
            match.group(1)
            for span in _spans(doc)
            if (match := DOTTED.match(span)) and match.group(1) not in not_code and not _resolves(match.group(1))
        }
    )
    assert not stale, f"{doc.name} names modules or functions that do not exist: {stale}"


# --- audit actions ------------------------------------------------------------------------------------------


def test_every_audit_action_is_documented_and_nothing_else() -> None:
    rows = _table_rows(_section(AUDIT_DOC, "## Audit actions"))
    documented = [row[0].strip("`") for row in rows]
    actions = [action.value for action in AuditAction]
    assert sorted(documented) == sorted(actions), (
        f"undocumented: {sorted(set(actions) - set(documented))}; not actions: {sorted(set(documented) - set(actions))}"
    )
    assert len(documented) == len(set(documented)), "an action is listed twice"
    for action, written_by, records in rows:
        assert BACKTICKED.search(written_by), f"{action}: name the service that writes it"
        assert records, f"{action}: say what its detail records"


def test_every_audit_action_has_a_description() -> None:
    assert set(AUDIT_ACTION_DESCRIPTIONS) == set(AuditAction)


# --- queues -------------------------------------------------------------------------------------------------


def _queues_after_q(words: list[str]) -> set[str]:
    return {queue for before, after in pairwise(words) if before == "-Q" for queue in after.split(",")}


def test_every_task_has_a_queue() -> None:
    assert set(TASK_QUEUES) == set(TaskName)


def test_the_readme_runs_a_worker_for_every_queue() -> None:
    text = README.read_text(encoding="utf-8")
    consumed = set()
    for line in text.splitlines():
        if "celery -A rfr worker" in line:
            consumed |= _queues_after_q(line.split())
    assert consumed >= {queue.value for queue in Queue}, f"README: no worker for {set(Queue) - consumed}"
    assert "celery -A rfr beat" in text


def test_docker_compose_runs_a_worker_for_every_queue_and_beat() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    commands = {name: service.get("command") for name, service in services.items()}
    consumed = set()
    for command in commands.values():
        if isinstance(command, list) and command[:4] == ["celery", "-A", "rfr", "worker"]:
            consumed |= _queues_after_q(command)
    assert consumed >= {queue.value for queue in Queue}, f"docker-compose.yml: no worker for {set(Queue) - consumed}"
    assert any(isinstance(c, list) and c[:4] == ["celery", "-A", "rfr", "beat"] for c in commands.values())


def test_make_worker_consumes_every_queue() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\nworker:") :].split("\n\n")[0]
    assert _queues_after_q(recipe.split()) >= {queue.value for queue in Queue}
