"""Check that a database filled by the previous release kept everything through this release's `migrate`.

Run by tests/test_upgrade.py with this tree as the working directory, after `python manage.py migrate` here on
the database that tests/upgrade/seed_previous_release.py filled with the previous release:

    DJANGO_SETTINGS_MODULE=rfr.settings DATABASE_URL=... python tests/upgrade/check_upgraded.py OUT.json

It computes the same fingerprint as the seed (seed_previous_release.database_fingerprint) through this
release's models, looked up with django.apps (a model that moved app is found under its new label, see
MOVED_MODELS), and compares: every seeded row must still be there with every field unchanged (primary keys
included, so foreign keys such as Case.team_id still point to the same rows), team members and supervisors,
users' groups and permissions, guardian object permissions and each user's effective access to each case.
It then runs `audit verify`, checks that no migration is left unapplied, that every foreign key column still
has its constraint on the right table, that new rows can be written (sequences moved on with copied rows) and
that every stored file is still found. Exit status 0 when all hold; otherwise 1 and a list of differences.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Models that live under another app in this release: previous label -> (app label, model name) now.
MOVED_MODELS: dict[str, tuple[str, str]] = {"cases.team": ("accounts", "Team")}
# Tables whose rows this release deletes on purpose in a migration: label -> why. They must be empty after it.
REMOVED_BY_DESIGN: dict[str, str] = {
    "authtoken.token": "API keys held in clear; rfr's own hashed, expiring tokens replace them (accounts 0006)",
}
TEAM_PERMISSION_VERBS = ("add", "change", "delete", "view")
MAX_LISTED = 200


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def model_resolver() -> Callable[[str], Any]:
    from django.apps import apps

    def resolve(label: str) -> Any:
        app_label, model_name = MOVED_MODELS.get(label) or label.split(".")
        return apps.get_model(app_label, model_name)

    return resolve


def label_renames(resolve: Callable[[str], Any]) -> dict[str, str]:
    """Natural keys of the previous release that read differently now: the moved models' content types and
    their default permissions (stored as "app_label.codename" in the fingerprint)."""
    renames: dict[str, str] = {}
    for old_label in MOVED_MODELS:
        old_app, model_name = old_label.split(".")
        new_app = resolve(old_label)._meta.app_label
        renames[old_label] = f"{new_app}.{model_name}"
        for verb in TEAM_PERMISSION_VERBS:
            renames[f"{old_app}.{verb}_{model_name}"] = f"{new_app}.{verb}_{model_name}"
    return renames


def compare(expected: dict[str, Any], actual: dict[str, Any], renames: dict[str, str]) -> tuple[list[str], list[str]]:
    """(problems, notes): what the upgrade lost or changed, and rows it holds that the seed did not make."""
    from tests.upgrade.seed_previous_release import PERMISSION_SETS

    problems: list[str] = []
    notes: list[str] = []
    for label, expected_rows in expected["rows"].items():
        actual_rows: dict[str, Any] = actual["rows"].get(label, {})
        if label in REMOVED_BY_DESIGN:
            if actual_rows:
                problems.append(f"{label}: {len(actual_rows)} rows left, but {REMOVED_BY_DESIGN[label]}")
            else:
                notes.append(f"{label}: all {len(expected_rows)} rows deleted on purpose: {REMOVED_BY_DESIGN[label]}")
            continue
        missing = [pk for pk in expected_rows if pk not in actual_rows]
        if missing:
            problems.append(f"{label}: {len(missing)} of {len(expected_rows)} rows missing (pk {', '.join(missing)})")
        for pk, row in expected_rows.items():
            got = actual_rows.get(pk)
            if got is None:
                continue
            for field, value in row.items():
                if field not in got:
                    problems.append(f"{label} pk {pk}: field {field!r} no longer exists")
                elif (label, field) in PERMISSION_SETS:
                    lost = sorted({renames.get(v, v) for v in value} - set(got[field]))
                    if lost:
                        problems.append(f"{label} pk {pk}: {field} lost {lost}")
                elif got[field] != value:
                    problems.append(f"{label} pk {pk}: {field} was {_short(value)}, is now {_short(got[field])}")
        extra = [pk for pk in actual_rows if pk not in expected_rows]
        if extra:
            notes.append(f"{label}: {len(extra)} rows the seed did not make (pk {', '.join(extra[:20])})")

    def renamed(row: list[str]) -> tuple[str, ...]:
        return (renames.get(row[0], row[0]), *row[1:])

    want = {renamed(row) for row in expected["guardian"]}
    have = {tuple(row) for row in actual["guardian"]}
    for row in sorted(want - have):
        problems.append(f"guardian object permission lost: {row[1]} on {row[0]} {row[2]} held by {row[3]}")
    for row in sorted(have - want):
        notes.append(f"guardian object permission not made by the seed: {row[1]} on {row[0]} {row[2]} by {row[3]}")

    for case_id, access in expected["case_access"].items():
        now = actual["case_access"].get(case_id, {})
        for user_id in sorted(set(access) | set(now), key=int):
            if access.get(user_id, []) != now.get(user_id, []):
                problems.append(
                    f"access to case {case_id} of user {user_id} was {access.get(user_id, [])}, "
                    f"is now {now.get(user_id, [])}"
                )
    for team_id, users in expected["team_supervisor_groups"].items():
        now_users = actual["team_supervisor_groups"].get(team_id)
        if now_users != users:
            problems.append(f"supervisor group of team {team_id} held users {users}, now {now_users}")

    before, after = expected["audit"], actual["audit"]
    if after["count"] < before["count"]:
        problems.append(f"audit trail had {before['count']} events, now {after['count']}")
    elif after["count"] > before["count"]:
        notes.append(f"audit trail: {after['count'] - before['count']} events added after the seed")
    return problems, notes


def audit_verify_problems(expected_audit: dict[str, Any]) -> tuple[list[str], str]:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("audit", "verify", stdout=out)
    except CommandError as error:
        return [f"audit verify failed: {error}"], ""
    report = out.getvalue().strip()
    parts = report.split()
    if len(parts) < 2 or parts[0] != "OK" or not parts[1].isdigit():
        return [f"audit verify printed {report!r}, not 'OK <count> events verified; head hash <hash>'"], report
    problems = []
    if int(parts[1]) < expected_audit["count"]:
        problems.append(f"audit verify checked {parts[1]} events; the previous release had {expected_audit['count']}")
    if int(parts[1]) == expected_audit["count"] and parts[-1] != expected_audit["last_row_hash"]:
        problems.append(f"audit head hash is {parts[-1]}, was {expected_audit['last_row_hash']}")
    return problems, report


def schema_problems(resolve: Callable[[str], Any], labels: tuple[str, ...]) -> list[str]:
    """Unapplied migrations, and foreign key columns without their constraint on the referenced table."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    problems: list[str] = []
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        problems.append("migrations left unapplied: " + ", ".join(str(migration) for migration, _ in plan))
    models = [resolve(label) for label in labels]
    team = resolve("cases.team")
    models += [team.members.through, team.supervisors.through]
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            constraints = connection.introspection.get_constraints(cursor, table)
            keys = set()
            for constraint in constraints.values():
                references = constraint.get("foreign_key")
                if references:
                    keys.add((tuple(constraint["columns"]), references[0]))
            for field in model._meta.concrete_fields:
                if not field.is_relation or not getattr(field, "db_constraint", False):
                    continue
                target = field.related_model._meta.db_table
                if ((field.column,), target) not in keys:
                    problems.append(f"{table}.{field.column} has no foreign key constraint to {target}")
    return problems


class _RolledBack(Exception):
    pass


def write_problems(resolve: Callable[[str], Any], expected: dict[str, Any]) -> list[str]:
    """A new team, a membership and a case on it, written and rolled back: the id sequence must have moved on
    past every team id the previous release issued, and the case's team must reference the teams' table now."""
    from django.db import connection, transaction

    team_model, case_model = resolve("cases.team"), resolve("cases.case")
    any_case = next(iter(expected["rows"]["cases.case"].values()))
    try:
        with transaction.atomic():
            team = team_model.objects.create(name="Upgrade check (rolled back)")
            team.members.add(any_case["owner_id"])
            case_model.objects.create(
                reference="UPGRADE-CHECK",
                title="Rolled back",
                purpose="other",
                legal_basis="Upgrade check",
                owner_id=any_case["owner_id"],
                team=team,
            )
            connection.check_constraints()
            issued = max((int(pk) for pk in expected["rows"]["cases.team"]), default=0)
            issued = max(issued, int(expected.get("id_high_water", {}).get("cases.team", 0)))
            if team.pk <= issued:
                # Ids of deleted teams must not come back: their supervisor groups (rfr-team-<id>-supervisors)
                # outlive them, so a new team with an old id would show its cases to the old supervisors.
                return [f"a new team was given id {team.pk}; the previous release had issued ids up to {issued}"]
            raise _RolledBack
    except _RolledBack:
        return []
    except Exception as error:
        return [f"writing a new team, member and case failed after the upgrade: {error!r}"]


def file_problems(resolve: Callable[[str], Any]) -> list[str]:
    """Every stored original, crop and gallery image is still found under the names the rows hold."""
    import hashlib

    problems: list[str] = []

    def content_sha256(field_file: Any) -> str | None:
        try:
            with field_file.open("rb") as handle:
                return hashlib.sha256(handle.read()).hexdigest()
        except FileNotFoundError:
            return None

    for probe in resolve("cases.probe")._base_manager.order_by("pk"):
        if content_sha256(probe.original) != probe.sha256:
            problems.append(f"probe {probe.pk}: original {probe.original.name} missing or changed")
    for face in resolve("cases.probeface")._base_manager.order_by("pk"):
        if not face.aligned_crop.storage.exists(face.aligned_crop.name):
            problems.append(f"probe face {face.pk}: crop {face.aligned_crop.name} missing")
    for image in resolve("search.galleryimage")._base_manager.order_by("pk"):
        if content_sha256(image.file) != image.sha256:
            problems.append(f"gallery image {image.pk}: file {image.file.name} missing or changed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare an upgraded database with the previous release's seed.")
    parser.add_argument("fingerprint", type=Path, help="the JSON that seed_previous_release.py wrote")
    args = parser.parse_args(argv)

    tree = Path.cwd().resolve()
    sys.path.insert(0, str(tree))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")
    import django
    from django.db import connection

    django.setup()
    from tests.upgrade.seed_previous_release import TABLES, database_fingerprint, require_tree

    require_tree(tree, "check")
    expected = json.loads(args.fingerprint.read_text(encoding="utf-8"))
    resolve = model_resolver()
    unknown = []
    for label in TABLES:
        try:
            resolve(label)
        except LookupError:
            unknown.append(f"{label} (looked up as {'.'.join(MOVED_MODELS.get(label) or label.split('.'))})")
    if unknown:
        print(f"UPGRADE CHECK: models of the previous release not found: {', '.join(unknown)}", file=sys.stderr)
        print("A model that moved app goes in MOVED_MODELS in tests/upgrade/check_upgraded.py.", file=sys.stderr)
        return 1
    renames = label_renames(resolve)
    actual = database_fingerprint(resolve)
    problems, notes = compare(expected, actual, renames)
    verify_problems, verify_report = audit_verify_problems(expected["audit"])
    problems += verify_problems
    problems += schema_problems(resolve, TABLES)
    problems += write_problems(resolve, expected)
    problems += file_problems(resolve)

    compared = sum(len(rows) for rows in expected["rows"].values())
    print(f"upgrade check on {connection.vendor}: {compared} rows of {len(expected['rows'])} tables compared")
    print(f"previous release: {expected['meta']['audit_verify']}")
    print(f"this release:     {verify_report or 'audit verify did not pass'}")
    for note in notes:
        print(f"note: {note}")
    if problems:
        print(f"\nUPGRADE LOST OR CHANGED DATA ({len(problems)} differences):", file=sys.stderr)
        for problem in problems[:MAX_LISTED]:
            print(f"  - {problem}", file=sys.stderr)
        if len(problems) > MAX_LISTED:
            print(f"  … and {len(problems) - MAX_LISTED} more", file=sys.stderr)
        return 1
    print("OK: every row, permission and file the previous release held is intact, and the audit chain verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
